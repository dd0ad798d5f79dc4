"""Worker and broker settings from the environment. API keys never leave the worker's process.

=========================  ===================================================================
``D360_REDIS_URL``         the shared Redis (default ``redis://127.0.0.1:6379/0``)
``D360_CHANNELS``          ``name=key,name2=key2``: the channels this worker may send through
``D360_CHANNELS_FILE``     a file of ``name=key`` lines (``#`` comments), instead or as well
``D360_BASE_URL``          API root (default: the client's 360dialog URL)
``D360_API``               ``cloud`` (default) or ``onprem``
``D360_RATE``              messages per second per channel (default 80)
``D360_CHANNEL_RATES``     ``name=rate,...``: per-channel exceptions to ``D360_RATE``
``D360_CONCURRENCY``       sends in flight per batch (default 8)
``D360_WORKER_BATCHES``    batches one worker process runs at once (default 8)
``D360_IDLE_TIMEOUT``      seconds before a dead worker's batches go to another (default 30)
``D360_OUTAGE_TIMEOUT``    seconds to ride out a Redis outage before failing (default 30)
``D360_SHUTDOWN_GRACE``    seconds sends in flight get to finish when a worker stops (default 5)
``D360_QUEUE``             the stream tasks travel on (default ``dialog360``)
=========================  ===================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from .._secret import Secret
from ..errors import ValidationError
from ._keys import channel_name

__all__ = ["BrokerSettings", "WorkerSettings", "parse_channels"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _float(env: Mapping[str, str], name: str, default: float, low: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(name, f"must be a number, got {raw!r}") from None
    if not low < value < float("inf"):
        raise ValidationError(name, f"must be > {low:g}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError(name, f"must be an integer >= 1, got {raw!r}")
    return int(raw)


def _pairs(text: str, source: str) -> list[tuple[str, str]]:
    pairs = []
    for n, item in enumerate(text.replace("\n", ",").split(","), 1):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        name, sep, value = item.partition("=")
        if not sep or not value.strip():
            # Never echo the item: it may be a key.
            raise ValidationError(source, f"entry {n} is not NAME=VALUE")
        pairs.append((channel_name(name.strip()), value.strip()))
    return pairs


def parse_channels(text: str, source: str = "D360_CHANNELS") -> dict[str, Secret]:
    """``name=key,...`` (or one per line) as channel name -> key."""
    channels: dict[str, Secret] = {}
    for name, key in _pairs(text, source):
        if name in channels:
            raise ValidationError(source, f"channel {name!r} is given twice")
        channels[name] = Secret(key)
    return channels


@attrs.frozen(kw_only=True)
class BrokerSettings:
    """What the producer and the workers share: where Redis is and how tasks travel."""

    redis_url: str = attrs.field(default=DEFAULT_REDIS_URL, repr=False)
    queue: str = "dialog360"
    idle_timeout: float = 30.0
    outage: float = 30.0
    worker_batches: int = 8
    shutdown_grace: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BrokerSettings:
        """Read the ``D360_*`` variables (see the module docs)."""
        env = os.environ if env is None else env
        return cls(
            redis_url=env.get("D360_REDIS_URL", "").strip() or DEFAULT_REDIS_URL,
            queue=env.get("D360_QUEUE", "").strip() or "dialog360",
            idle_timeout=_float(env, "D360_IDLE_TIMEOUT", 30.0),
            outage=_float(env, "D360_OUTAGE_TIMEOUT", 30.0),
            worker_batches=_int(env, "D360_WORKER_BATCHES", 8),
            shutdown_grace=_float(env, "D360_SHUTDOWN_GRACE", 5.0),
        )


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """What a worker needs to send: its channels' keys, the API root and the pacing."""

    channels: Mapping[str, Secret] = attrs.field(repr=lambda c: f"<{len(c)} channels>")
    base_url: str | None = None
    on_premise: bool = False
    rate: float = 80.0
    rates: Mapping[str, float] = attrs.Factory(dict)
    concurrency: int = 8

    def rate_of(self, channel: str) -> float:
        """The configured msg/s of ``channel``."""
        return self.rates.get(channel, self.rate)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read the ``D360_*`` variables (see the module docs).

        Raises:
            ValidationError: a variable is malformed, or no channel is configured.
        """
        env = os.environ if env is None else env
        channels = parse_channels(env.get("D360_CHANNELS", ""))
        path = env.get("D360_CHANNELS_FILE", "").strip()
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValidationError("D360_CHANNELS_FILE", f"cannot read {path}: {exc}") from None
            for name, key in parse_channels(text, f"D360_CHANNELS_FILE {path}").items():
                if name in channels:
                    raise ValidationError("D360_CHANNELS_FILE", f"channel {name!r} given twice")
                channels[name] = key
        if not channels:
            raise ValidationError(
                "D360_CHANNELS", "no channel configured: set D360_CHANNELS or D360_CHANNELS_FILE"
            )
        rates = {}
        for name, raw in _pairs(env.get("D360_CHANNEL_RATES", ""), "D360_CHANNEL_RATES"):
            rates[name] = _float({"r": raw}, "r", 80.0)
        api = env.get("D360_API", "cloud").strip().lower() or "cloud"
        if api not in ("cloud", "onprem"):
            raise ValidationError("D360_API", f"must be cloud or onprem, got {api!r}")
        return cls(
            channels=channels,
            base_url=env.get("D360_BASE_URL", "").strip() or None,
            on_premise=api == "onprem",
            rate=_float(env, "D360_RATE", 80.0),
            rates=rates,
            concurrency=_int(env, "D360_CONCURRENCY", 8),
        )

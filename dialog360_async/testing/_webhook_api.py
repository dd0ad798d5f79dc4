"""The fake's user-facing side of webhooks and the 24-hour window (a base of `FakeDialog360`)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Mapping
from typing import Literal

from ._bodies import digits, wamid
from ._delivery import Api, DeliveryLog, Fate, WebhookPlan
from ._handlers import REQUEST_BODY
from ._payloads import inbound
from ._state import Channel, Channels
from ._webhook_config import Target, target
from ._webhooks import Emitter

__all__ = ["WebhookSide"]


def _loopback_target(url: str, headers: Mapping[str, str] | None) -> Target:
    found = target(url, headers)
    if not found.loopback:
        raise ValueError("the fake POSTs webhooks only to loopback URLs (127.0.0.1, ::1)")
    return found


class WebhookSide:
    """Who is inside the 24-hour window, where webhooks go, and what they will say."""

    engage_all: bool
    _channels: Channels

    def _init_webhooks(
        self,
        url: str | None,
        headers: Mapping[str, str] | None,
        secret: str | bytes | None,
        plan: WebhookPlan | None,
    ) -> None:
        self.webhooks = WebhookPlan() if plan is None else plan
        self._engaged_everywhere: set[str] = set()
        self._default_webhook = None if url is None else _loopback_target(url, headers)
        key = secret.encode() if isinstance(secret, str) else secret
        self._emitter = Emitter(lambda: self.webhooks, lambda: key)

    # -- the window -----------------------------------------------------------------------------

    def engage(self, *numbers: str, api_key: str | None = None) -> None:
        """Put users inside the 24h window of one channel (``api_key``) or of every channel."""
        wa_ids = {digits(number) for number in numbers}
        if api_key is None:
            self._engaged_everywhere |= wa_ids
            return
        self._channel(api_key, "engage").engaged |= wa_ids

    def _is_engaged(self, channel: Channel, wa_id: str) -> bool:
        """Whether ``wa_id`` wrote to ``channel`` (may be blocked, reported, sent free-form)."""
        return self.engage_all or wa_id in self._engaged_everywhere or wa_id in channel.engaged

    def _channel(self, api_key: str, caller: str) -> Channel:
        channel = self._channels.for_key(api_key)
        if channel is None:
            raise ValueError(f"{caller}(): that api_key is not one of the fake's api_keys")
        return channel

    # -- configuration --------------------------------------------------------------------------

    def set_webhook(
        self,
        url: str | None,
        headers: Mapping[str, str] | None = None,
        *,
        api_key: str | None = None,
    ) -> None:
        """Send webhooks to ``url`` (None: stop) with ``headers`` on every POST.

        With ``api_key`` it is that channel's webhook (as ``POST /v1/configs/webhook`` sets it);
        without, the default of every channel that has none. Only loopback URLs are accepted.
        """
        found = None if url is None else _loopback_target(url, headers)
        if api_key is None:
            self._default_webhook = found
        else:
            self._channel(api_key, "set_webhook").webhook = found

    def fate(self, number: str, status: Fate, *, code: int | None = None) -> None:
        """Decide how sends to ``number`` end: ``"read"``, ``"delivered"``, ``"sent"`` (never
        delivered) or ``"failed"`` with ``code`` (default 131026). Overrides the random mix
        and the window rule; `reset` forgets it."""
        self._emitter.fates.set(number, status, code)

    @property
    def delivery(self) -> DeliveryLog:
        """What the fake decided for every send it planned webhooks for, by message id."""
        return self._emitter.log

    async def webhooks_idle(self) -> None:
        """Wait until every webhook scheduled so far was answered 200 or given up.

        Raises:
            RuntimeError: posting failed unexpectedly (e.g. the plan's ``sleep`` raised).
        """
        await self._emitter.idle()

    def user_writes(
        self,
        number: str,
        text: str,
        *,
        api_key: str | None = None,
        name: str | None = None,
        api: Api | None = None,
    ) -> str:
        """A user sends the business a text: open their 24-hour window and post the inbound
        ``messages[]`` webhook; returns its message id.

        Args:
            number: The user's phone number.
            text: What they wrote.
            api_key: The channel they wrote to; None opens the window on every channel and posts
                to the default webhook (`set_webhook` without a key).
            name: Their WhatsApp profile name (``contacts[].profile.name``).
            api: The payload shape; default: the channel's last send (else Cloud).
        """
        self.engage(number, api_key=api_key)
        wa_id = digits(number)
        channel = None if api_key is None else self._channel(api_key, "user_writes")
        shape: Api = api or (channel.api if channel is not None and channel.api else "cloud")
        message_id = (
            wamid(wa_id, int.from_bytes(os.urandom(4), "big"))
            if shape == "cloud"
            else "ABGG" + os.urandom(12).hex().upper()
        )
        found = self._default_webhook if channel is None else self._webhook_target(channel)
        if found is not None and found.loopback:
            if not self._emitter.running:
                raise RuntimeError("user_writes() posts a webhook: start the fake first")
            item = inbound(
                wa_id=wa_id,
                name=name or f"User {wa_id[-4:]}",
                text=text,
                message_id=message_id,
                timestamp=int(time.time()),
            )
            label, serial = ("default", 0) if channel is None else (channel.label, channel.serial)
            self._emitter.message(
                label=label,
                serial=serial,
                target=found,
                api=shape,
                item=item,
                message_id=message_id,
            )
        return message_id

    # -- the send path ------------------------------------------------------------------------

    def _webhook_target(self, channel: Channel) -> Target | None:
        """Where ``channel``'s webhooks go: its own webhook, else the fake's default."""
        return channel.webhook or self._default_webhook

    def _accepted(
        self, channel: Channel, wa_id: str, message_id: str, api: Literal["cloud", "on_premise"]
    ) -> Awaitable[object] | None:
        """Plan the status webhooks of an accepted send (nothing at all when none is set)."""
        found = channel.webhook or self._default_webhook
        if found is None:
            return None
        if not found.loopback:
            self._emitter.counters.not_loopback += 1
            return None
        channel.api = api
        body = REQUEST_BODY.get()
        callback = body.get("biz_opaque_callback_data") if api == "cloud" else None
        return self._emitter.send(
            label=channel.label,
            serial=channel.serial,
            target=found,
            api=api,
            message_id=message_id,
            wa_id=wa_id,
            callback_data=callback if isinstance(callback, str) else None,
            template=body.get("type") == "template",
            in_window=self._is_engaged(channel, wa_id),
        )

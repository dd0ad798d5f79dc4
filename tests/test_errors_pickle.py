"""SDK errors pickle and copy with every attribute (they cross process boundaries in task
queues), and carry nothing secret across; clients still refuse to pickle."""

from __future__ import annotations

import concurrent.futures
import copy
import importlib
import multiprocessing
import pickle
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest

import dialog360_async
from dialog360_async import Dialog360Client, OnPremiseClient, errors
from dialog360_async._secret import Secret
from dialog360_async.errors import (
    APIError,
    DeliveryUnknownError,
    Dialog360Error,
    PolicyError,
    RateLimitError,
    ServerError,
    SuppressedError,
    TransportError,
    UnreachableError,
    ValidationError,
)
from dialog360_async.testing import FakeDialog360, FakeResponse

from .conftest import API_KEY


def _all_errors() -> list[type[Dialog360Error]]:
    # Every module, so that the errors of the subpackages (distributed, webhooks, the journal)
    # and any added later are in the list.
    for module in pkgutil.walk_packages(dialog360_async.__path__, "dialog360_async."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: list[type[Dialog360Error]] = []
    todo: list[type[Dialog360Error]] = [Dialog360Error]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("dialog360_async") and cls not in found:
            found.append(cls)
        todo += cls.__subclasses__()
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


ALL_ERRORS = _all_errors()
CAUSE = ServerError(
    "Internal error",
    status=500,
    code=131000,
    details="Something went wrong",
    fbtrace_id="AbC123",
    request="POST /messages",
    body={"error": {"code": 131000, "message": "Internal error", "nested": [1, {"a": None}]}},
    ambiguous=True,
)
API_FIELDS: dict[str, Any] = {
    "status": 429,
    "code": 130429,
    "details": "Cloud API message throughput has been reached",
    "fbtrace_id": "A1b2C3",
    "request": "POST /messages",
    "body": {"error": {"code": 130429, "error_data": {"details": "slow down"}}},
    "retryable": True,
}


def _sample(cls: type[Dialog360Error]) -> Dialog360Error:
    """An instance with every attribute set to something other than its default."""
    if issubclass(cls, ValidationError):
        return cls("Location.latitude", "must be a finite number in [-90, 90], got 95")
    if issubclass(cls, RateLimitError):
        return cls("(#130429) Rate limit hit", retry_after=2.5, **API_FIELDS)
    if issubclass(cls, ServerError):
        return cls("Service unavailable", ambiguous=True, **{**API_FIELDS, "status": 500})
    if issubclass(cls, APIError):
        return cls("Not engaged contact", **{**API_FIELDS, "status": 400, "retryable": False})
    if issubclass(cls, DeliveryUnknownError):
        return cls("delivery unknown (ServerError)", request="POST /messages", cause=CAUSE)
    if issubclass(cls, UnreachableError):
        return cls("unreachable for 60.0 s", request="POST /messages")
    if issubclass(cls, TransportError):
        return cls("ServerTimeoutError", request="GET /block_users", sent=False, retryable=False)
    if issubclass(cls, SuppressedError):
        return cls("deferred until tomorrow: 131049", recipient="4915", code=131049, until=9.5)
    if issubclass(cls, PolicyError):
        return cls("template 'promo' halted: 132015", code=132015)
    try:
        return cls(f"{cls.__name__}: something went wrong")  # the ones without own attributes
    except TypeError:
        pytest.fail(f"{cls.__qualname__} takes other arguments: add a sample for it here")


def _state(error: BaseException) -> dict[str, Any]:
    """Everything an error carries, causes unfolded, for comparison."""
    state = {
        "type": type(error),
        "args": error.args,
        "str": str(error),
        "repr": repr(error),
        "retryable": getattr(error, "retryable", None),
    }
    for name, value in vars(error).items():
        state[name] = _state(value) if isinstance(value, BaseException) else value
    return state


def _pickled(protocol: int) -> Callable[[Any], Any]:
    return lambda error: pickle.loads(pickle.dumps(error, protocol))


COPIES: dict[str, Callable[[Any], Any]] = {
    **{f"pickle-{p}": _pickled(p) for p in range(6)},
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


def test_every_error_class_is_found() -> None:
    names = {cls.__name__ for cls in ALL_ERRORS}
    assert set(errors.__all__) <= names
    assert {"DistributedError", "RedisUnavailableError", "CampaignLostError"} <= names
    assert {"JournalError", "WebhookError"} <= names


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__qualname__)
def test_round_trip_keeps_every_attribute(cls: type[Dialog360Error], how: str) -> None:
    error = _sample(cls)
    again: Any = COPIES[how](error)
    assert again is not error
    assert _state(again) == _state(error)
    assert type(again) is cls
    if isinstance(error, ValidationError):
        assert isinstance(again, ValidationError) and isinstance(again, ValueError)
        assert (again.field, again.rule) == (error.field, error.rule)


def test_the_sampled_attributes_are_the_documented_ones() -> None:
    # The round trip above compares vars(); make sure they hold what the brief lists.
    api = vars(_sample(errors.RateLimitError))
    assert {"status", "code", "message", "details", "fbtrace_id", "request", "body"} <= set(api)
    assert {"retry_after", "retryable"} <= set(api)
    assert "ambiguous" in vars(_sample(errors.ServerError))
    assert {"message", "request", "sent", "retryable"} <= set(vars(_sample(TransportError)))
    assert {"field", "rule"} <= set(vars(_sample(ValidationError)))
    assert vars(_sample(DeliveryUnknownError))["cause"] is CAUSE


@pytest.mark.parametrize("how", sorted(COPIES))
def test_cause_chain_survives(how: str) -> None:
    error = DeliveryUnknownError(
        "an earlier attempt may have been delivered", request="POST /v1/messages", cause=CAUSE
    )
    error.add_note("campaign spring-sale, key 42")
    again = COPIES[how](error)
    assert isinstance(again.cause, ServerError)
    assert again.cause is not CAUSE or how == "copy"  # a shallow copy shares the cause
    assert (again.cause.status, again.cause.code, again.cause.ambiguous) == (500, 131000, True)
    assert again.cause.body == CAUSE.body
    assert str(again.cause) == str(CAUSE) and repr(again.cause) == repr(CAUSE)
    assert again.__notes__ == ["campaign spring-sale, key 42"]
    assert (again.sent, again.retryable) == (True, False)


def test_retryable_override_survives() -> None:
    # A class default (APIError.retryable is False) overridden per instance must stay so.
    error = APIError("gateway limit", status=400, retryable=True)
    assert pickle.loads(pickle.dumps(error)).retryable is True
    assert pickle.loads(pickle.dumps(APIError("x", status=400))).retryable is False


def _raise_in_child(kind: str) -> None:
    if kind == "validation":
        raise ValidationError("to", "must have 5 to 20 digits")
    raise DeliveryUnknownError("unknown", request="POST /messages", cause=CAUSE)


def test_errors_cross_a_process_boundary() -> None:
    # What a task queue does: the child raises, the parent gets the error back, unpickled.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        for kind, cls in (("validation", ValidationError), ("unknown", DeliveryUnknownError)):
            with pytest.raises(cls) as info:
                pool.submit(_raise_in_child, kind).result(timeout=60)
            error: Any = info.value
            if kind == "unknown":
                assert error.cause.code == 131000 and error.request == "POST /messages"
            else:
                assert (error.field, error.rule) == ("to", "must have 5 to 20 digits")


async def test_real_errors_pickle_without_the_key() -> None:
    # Errors as the clients raise them, from real answers: the key is nowhere in the bytes.
    async with FakeDialog360(api_keys=[API_KEY], throughput=None) as fake:
        fake.script("POST", "/messages", FakeResponse(status=500, json={"error": {"code": 1}}))
        fake.script("POST", "/v1/contacts/{phone}/block", FakeResponse(status=401))
        caught: list[Dialog360Error] = []
        async with Dialog360Client(API_KEY, base_url=fake.url, retry=None) as cloud:
            where = dialog360_async.Location(latitude=1, longitude=2)
            with pytest.raises(DeliveryUnknownError) as unknown:
                await cloud.send_location("+4915112345678", where)
            caught.append(unknown.value)
        async with OnPremiseClient(API_KEY, base_url=fake.url, retry=None) as onprem:
            with pytest.raises(errors.AuthenticationError) as denied:
                await onprem.block_users("+4915112345678")
            caught.append(denied.value)
    for error in caught:
        for protocol in range(6):
            data = pickle.dumps(error, protocol)
            assert API_KEY.encode() not in data
            assert _state(pickle.loads(data)) == _state(error)
    assert isinstance(caught[0], DeliveryUnknownError) and caught[0].cause is not None


def test_a_secret_attached_to_an_error_refuses_to_pickle() -> None:
    # Never the case in the SDK; if someone attaches one, pickling fails instead of leaking.
    error = APIError("x", status=401)
    error.key = Secret(API_KEY)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(error)


def test_clients_still_refuse() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Dialog360Client(API_KEY))

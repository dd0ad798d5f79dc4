"""One parser for all five error body formats: classify by body code first, status second."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialog360_async import (
    APIError,
    AuthenticationError,
    Dialog360Error,
    InvalidParameterError,
    NotEngagedError,
    PairRateLimitError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SpamRateLimitError,
)
from dialog360_async._error_parser import parse_error


def meta(code: int, message: str = "boom", **extra: Any) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": "more words"},
            "fbtrace_id": "AbCdEf",
            **extra,
        }
    }


def onprem(code: int, title: str = "Not engaged contact") -> dict[str, Any]:
    return {"errors": [{"code": code, "title": title, "details": "why"}], "meta": {"version": "2"}}


GATEWAY_LIMIT_CAMEL = {
    "meta": {
        "httpCode": 400,
        "developerMessage": (
            "You have exceeded the limit of 1 request every 5 seconds. Try again later."
        ),
        "success": False,
    }
}
GATEWAY_LIMIT_SNAKE = {
    "meta": {
        "http_code": 400,
        "developer_message": "You have exceeded the endpoint rate limit",
        "success": False,
    }
}
GATEWAY_401 = {"meta": {"success": False, "httpCode": 404, "developerMessage": "Invalid api key"}}
PARTNER_DETAIL = {
    "detail": {"body": {"block_users": ["field required"]}},
    "message": "Validation error",
}
PARTNER_NOT_FOUND = {"detail": {}, "message": "Not found"}
PARTNER_ENVELOPE = {
    "meta": {"developer_message": "Failed", "http_code": 400, "success": False},
    "status_code": 400,
    "data": {
        "errors": {
            "message": "(#131047) Re-engagement message",
            "type": "OAuthException",
            "code": 131047,
            "error_data": {"details": "24h"},
            "fbtrace_id": "tr",
        }
    },
}


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        # A: Meta Graph errors, classified by code whatever the status says
        (400, meta(130429), RateLimitError, 130429),
        (429, meta(4), RateLimitError, 4),
        (400, meta(80007), RateLimitError, 80007),
        (400, meta(131056), PairRateLimitError, 131056),
        (429, meta(131056), PairRateLimitError, 131056),
        (400, meta(131048), SpamRateLimitError, 131048),
        (400, meta(131047), NotEngagedError, 131047),
        (401, meta(190), AuthenticationError, 190),
        (400, meta(0), AuthenticationError, 0),
        (400, meta(100), InvalidParameterError, 100),
        (400, meta(131008), InvalidParameterError, 131008),
        (500, meta(131000), ServerError, 131000),
        (503, meta(2), ServerError, 2),
        (400, meta(131026), APIError, 131026),
        (403, meta(368), PermissionDeniedError, 368),
        # B: On-Premise
        (400, onprem(2048), NotEngagedError, 2048),
        (400, onprem(470), NotEngagedError, 470),
        (400, onprem(1009, "Parameter value is not valid"), InvalidParameterError, 1009),
        # C: 360dialog gateway, both casings; the rate limit is a 400 found by its text
        (400, GATEWAY_LIMIT_CAMEL, RateLimitError, None),
        (400, GATEWAY_LIMIT_SNAKE, RateLimitError, None),
        (401, GATEWAY_401, AuthenticationError, None),
        # D: Partner detail/message
        (422, PARTNER_DETAIL, InvalidParameterError, None),
        (404, PARTNER_NOT_FOUND, APIError, None),
        # E: Partner envelope
        (400, PARTNER_ENVELOPE, NotEngagedError, 131047),
        # status only
        (429, None, RateLimitError, None),
        (403, None, PermissionDeniedError, None),
        (502, None, ServerError, None),
        (500, b"<html>oops</html>", ServerError, None),
        (418, None, APIError, None),
    ],
)
def test_classification(status: int, body: Any, cls: type[APIError], code: int | None) -> None:
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    error = parse_error(status, raw, {}, "POST /messages")
    assert type(error) is cls
    assert error.status == status
    assert error.code == code
    assert error.request == "POST /messages"
    assert error.message


def test_meta_fields_kept() -> None:
    error = parse_error(400, json.dumps(meta(131047, "Re-engage")).encode(), {}, "POST /messages")
    assert (error.message, error.details, error.fbtrace_id) == ("Re-engage", "more words", "AbCdEf")
    assert "131047" in str(error)
    assert "POST /messages" in str(error)


def test_onprem_fields_kept() -> None:
    error = parse_error(400, json.dumps(onprem(2048)).encode(), {}, "POST /v1/contacts/1/block")
    assert (error.message, error.details) == ("Not engaged contact", "why")


def test_partner_detail_becomes_details() -> None:
    error = parse_error(422, json.dumps(PARTNER_DETAIL).encode(), {}, "POST /x")
    assert error.message == "Validation error"
    assert error.details is not None
    assert "field required" in error.details


@pytest.mark.parametrize(
    ("status", "body", "ambiguous"),
    [
        (500, None, True),
        (504, None, True),
        (502, None, False),
        (503, None, False),
        (500, meta(131000), True),
        (500, meta(1), True),
        (503, meta(2), False),
        (503, meta(131016), False),
        (500, meta(131016), False),  # the code says "unavailable": not processed
    ],
)
def test_server_error_ambiguity(status: int, body: Any, ambiguous: bool) -> None:
    raw = b"" if body is None else json.dumps(body).encode()
    error = parse_error(status, raw, {}, "POST /messages")
    assert isinstance(error, ServerError)
    assert error.ambiguous is ambiguous
    assert error.retryable


def test_retry_after_read_for_rate_limits() -> None:
    error = parse_error(429, b"", {"Retry-After": "7"}, "POST /messages")
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0
    assert error.retryable


def test_retryable_flags() -> None:
    assert not parse_error(400, json.dumps(meta(131048)).encode(), {}, "x").retryable
    assert not parse_error(400, json.dumps(meta(100)).encode(), {}, "x").retryable
    assert parse_error(400, json.dumps(meta(130429)).encode(), {}, "x").retryable


def test_redirect_explained() -> None:
    error = parse_error(307, b"", {"Location": "http://elsewhere"}, "POST /messages")
    assert type(error) is APIError
    assert "redirect not followed" in error.message


@given(st.integers(100, 599), st.binary(max_size=300))
def test_arbitrary_bytes_give_an_sdk_error(status: int, body: bytes) -> None:
    error = parse_error(status, body, {}, "GET /x")
    assert isinstance(error, Dialog360Error)
    str(error)
    repr(error)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "error",
                    "errors",
                    "meta",
                    "data",
                    "detail",
                    "message",
                    "code",
                    "title",
                    "developerMessage",
                    "developer_message",
                    "error_data",
                    "details",
                    "fbtrace_id",
                    "status_code",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@given(st.integers(100, 599), json_values)
def test_arbitrary_json_gives_an_sdk_error(status: int, body: Any) -> None:
    error = parse_error(status, json.dumps(body).encode(), {"Retry-After": "x"}, "GET /x")
    assert isinstance(error, Dialog360Error)
    str(error)
    repr(error)


def test_deeply_nested_json_does_not_escape() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    assert isinstance(parse_error(500, body, {}, "GET /x"), ServerError)

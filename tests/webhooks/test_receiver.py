"""WebhookReceiver on a real loopback server: auth, ack before callbacks, caps, dedup, faults."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dialog360_async import Secret
from dialog360_async.errors import ValidationError
from dialog360_async.webhooks import (
    SIGNATURE_HEADER,
    InboundMessage,
    MemoryWebhookStore,
    Notification,
    StatusUpdate,
    WebhookReceiver,
)

from .harness import PATH, Recorder, serve, sign
from .payloads import CLOUD_BATCH, CLOUD_BUTTON, CLOUD_SENT, WAMID_A, cloud, encode, onprem, status

TOKEN = "Bearer t0ken-0123456789abcdef"
PARTNER = "p4rtner-auth-fedcba9876543210"
PLATFORM_SECRET = "pl4tform-s3cret-0123456789"
WAIT = 5.0  # seconds: bound on every wait for a callback, far above what any should take


class CountingStore(MemoryWebhookStore):
    """The default store, counting calls (to show a rejected body never reaches it)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def record_webhook(self, notification: Notification) -> Notification:
        self.calls += 1
        return await super().record_webhook(notification)


async def test_right_auth_headers_are_answered_200_and_dispatched() -> None:
    seen = Recorder()
    receiver = WebhookReceiver(
        on_status=seen.on_status, auth_headers={"Authorization": TOKEN, "X-Partner-Auth": PARTNER}
    )
    async with serve(receiver) as client:
        response = await client.post(
            PATH, data=CLOUD_BATCH, headers={"authorization": TOKEN, "X-Partner-Auth": PARTNER}
        )
        assert response.status == 200
        assert await response.read() == b""
    assert [s.key for s in seen.statuses] == [("wamid.AAA", "read"), ("wamid.BBB", "delivered")]
    assert receiver.stats.dispatched == 2
    assert receiver.stats.rejected == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": TOKEN},  # one of the two
        {"Authorization": TOKEN, "X-Partner-Auth": PARTNER + "x"},
        {"Authorization": TOKEN[:-1], "X-Partner-Auth": PARTNER},
        {"Authorization": "", "X-Partner-Auth": PARTNER},
        {"Authorization": TOKEN + "é", "X-Partner-Auth": PARTNER},
    ],
)
async def test_wrong_or_missing_auth_headers_are_401_and_nothing_is_recorded(
    headers: dict[str, str],
) -> None:
    seen = Recorder()
    store = CountingStore()
    receiver = WebhookReceiver(
        store=store,
        on_status=seen.on_status,
        auth_headers={"Authorization": TOKEN, "X-Partner-Auth": Secret(PARTNER)},
    )
    async with serve(receiver) as client:
        response = await client.post(PATH, data=CLOUD_BATCH, headers=headers)
        assert response.status == 401
    assert seen.statuses == []
    assert store.calls == 0
    assert receiver.stats.rejected == 1
    assert receiver.stats.received == 0


@pytest.mark.parametrize(
    "encode_signature",
    [
        lambda digest: digest,
        lambda digest: f"sha256={digest}",
        lambda digest: digest.upper(),
        lambda digest: f"SHA256={digest} ",
    ],
    ids=["bare-hex", "sha256=hex", "upper-hex", "upper-prefix-padded"],
)
async def test_both_signature_encodings_are_accepted(encode_signature: Any) -> None:
    seen = Recorder()
    receiver = WebhookReceiver(on_status=seen.on_status, signature_secret=PLATFORM_SECRET)
    body = CLOUD_SENT.encode()
    async with serve(receiver) as client:
        signature = encode_signature(sign(body, PLATFORM_SECRET))
        response = await client.post(PATH, data=body, headers={SIGNATURE_HEADER: signature})
        assert response.status == 200
    assert [s.message_id for s in seen.statuses] == [WAMID_A]


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        sign(CLOUD_SENT.encode(), "another secret"),
        sign(CLOUD_BATCH.encode(), PLATFORM_SECRET),  # valid, for another body
        sign(CLOUD_SENT.encode(), PLATFORM_SECRET)[:-2],
        "sha1=" + sign(CLOUD_SENT.encode(), PLATFORM_SECRET),
        "ünïcode",
    ],
)
async def test_a_wrong_or_missing_signature_is_401(signature: str | None) -> None:
    seen = Recorder()
    store = CountingStore()
    receiver = WebhookReceiver(
        store=store, on_status=seen.on_status, signature_secret=Secret(PLATFORM_SECRET)
    )
    headers = {} if signature is None else {SIGNATURE_HEADER: signature}
    async with serve(receiver) as client:
        response = await client.post(PATH, data=CLOUD_SENT.encode(), headers=headers)
        assert response.status == 401
    assert seen.statuses == []
    assert store.calls == 0


async def test_headers_and_signature_together() -> None:
    seen = Recorder()
    receiver = WebhookReceiver(
        on_status=seen.on_status,
        auth_headers={"Authorization": TOKEN},
        signature_secret=PLATFORM_SECRET,
    )
    body = CLOUD_SENT.encode()
    good = sign(body, PLATFORM_SECRET)
    async with serve(receiver) as client:
        only_signed = await client.post(PATH, data=body, headers={SIGNATURE_HEADER: good})
        only_header = await client.post(PATH, data=body, headers={"Authorization": TOKEN})
        both = await client.post(
            PATH, data=body, headers={"Authorization": TOKEN, SIGNATURE_HEADER: good}
        )
    assert (only_signed.status, only_header.status, both.status) == (401, 401, 200)
    assert len(seen.statuses) == 1


async def test_200_is_answered_while_an_async_callback_is_still_blocked() -> None:
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow(status: StatusUpdate) -> None:
        started.set()
        await release.wait()
        finished.set()

    receiver = WebhookReceiver(on_status=slow)
    async with serve(receiver) as client:
        response = await asyncio.wait_for(client.post(PATH, data=CLOUD_SENT), WAIT)
        assert response.status == 200
        assert not finished.is_set()
        await asyncio.wait_for(started.wait(), WAIT)
        # The callback is running and blocked; more webhooks are still answered at once.
        assert (await asyncio.wait_for(client.post(PATH, data=CLOUD_BATCH), WAIT)).status == 200
        assert not finished.is_set()
        release.set()
        await asyncio.wait_for(finished.wait(), WAIT)
    assert receiver.stats.dispatched == 3


async def test_a_blocking_sync_callback_runs_in_a_thread_and_never_delays_the_ack() -> None:
    started, release = threading.Event(), threading.Event()
    got: list[str] = []

    def blocking(status: StatusUpdate) -> None:  # e.g. a synchronous database driver
        started.set()
        release.wait(WAIT)
        got.append(status.message_id)

    receiver = WebhookReceiver(on_status=blocking)
    async with serve(receiver) as client:
        assert (await asyncio.wait_for(client.post(PATH, data=CLOUD_SENT), WAIT)).status == 200
        assert await asyncio.to_thread(started.wait, WAIT)
        # The loop is free: a second webhook is answered while the thread is blocked.
        assert (await asyncio.wait_for(client.post(PATH, data=CLOUD_BATCH), WAIT)).status == 200
        assert got == []
        release.set()
    assert sorted(got) == sorted([WAMID_A, "wamid.AAA", "wamid.BBB"])


async def test_async_callable_objects_and_sync_callbacks_returning_awaitables() -> None:
    got: list[str] = []

    class Handler:
        async def __call__(self, message: InboundMessage) -> None:
            got.append(f"message {message.message_id}")

    async def record(status: StatusUpdate) -> None:
        got.append(f"status {status.message_id}")

    receiver = WebhookReceiver(on_status=lambda status: record(status), on_message=Handler())
    async with serve(receiver) as client:
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 200
        assert (await client.post(PATH, data=CLOUD_BUTTON)).status == 200
    assert sorted(got) == sorted([f"status {WAMID_A}", "message wamid.CCC"])


def _padded(size: int) -> bytes:
    """A valid webhook of exactly ``size`` bytes (padding in an unknown field)."""
    body = encode(onprem([status("wamid.P", "sent")], padding=""))
    return body.replace(b'"padding": ""', b'"padding": "' + b"x" * (size - len(body)) + b'"')


async def test_a_body_over_max_body_is_413_by_content_length() -> None:
    seen = Recorder()
    store = CountingStore()
    receiver = WebhookReceiver(store=store, on_status=seen.on_status, max_body=1000)
    async with serve(receiver) as client:
        assert (await client.post(PATH, data=_padded(1001))).status == 413
        assert store.calls == 0
        assert (await client.post(PATH, data=_padded(1000))).status == 200
        # A length over the cap is refused by it while the body has not come: no waiting.
        assert client.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n"
        writer.write(head.encode() + b'{"statuses": [')
        status_line = await asyncio.wait_for(reader.readline(), WAIT)
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"413"
    assert [s.message_id for s in seen.statuses] == ["wamid.P"]
    assert receiver.stats.rejected == 2


@pytest.mark.parametrize("pause", [0.0, 0.02], ids=["buffered", "trickled"])
async def test_a_chunked_body_over_max_body_is_413_while_reading(pause: float) -> None:
    seen = Recorder()
    store = CountingStore()
    receiver = WebhookReceiver(store=store, on_status=seen.on_status, max_body=1000)

    async def chunks(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 300):
            yield body[start : start + 300]
            await asyncio.sleep(pause)  # trickled: the handler reads before the body ends

    async with serve(receiver) as client:
        # An async generator has no length: aiohttp sends it chunked.
        response = await client.post(PATH, data=chunks(_padded(1001)))
        assert response.status == 413
        assert store.calls == 0
        assert (await client.post(PATH, data=chunks(_padded(1000)))).status == 200
    assert [s.message_id for s in seen.statuses] == ["wamid.P"]


async def test_a_chunked_body_over_max_body_that_arrived_whole_is_413() -> None:
    # One write: the whole chunked body is parsed before the handler runs.
    receiver = WebhookReceiver(store=CountingStore(), max_body=1000)
    async with serve(receiver) as client:
        port = client.port
        assert port is not None
        for size, expected in ((1001, b"413"), (1000, b"200")):
            body = _padded(size)
            request = (
                f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            request += b"".join(
                b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:500], body[500:])
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request + b"0\r\n\r\n")
            status_line = await asyncio.wait_for(reader.readline(), WAIT)
            writer.close()
            await writer.wait_closed()
            assert status_line.split()[1] == expected
    assert receiver.stats.rejected == 1


async def test_max_body_applies_not_the_applications_client_max_size() -> None:
    # Mounted in a user's app with aiohttp's default client_max_size of 1 MiB.
    seen = Recorder()
    receiver = WebhookReceiver(on_status=seen.on_status)
    app = web.Application()
    app.router.add_post("/hooks/360", receiver.handler)
    async with receiver, TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.post("/hooks/360", data=io.BytesIO(_padded(3 * 1024 * 1024)))
        assert response.status == 200
    assert [s.message_id for s in seen.statuses] == ["wamid.P"]


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"hello": "world"}', b"\xff", b'{"entry": 3}']
)
async def test_an_authenticated_body_that_is_no_webhook_is_200_and_counted(
    body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = CountingStore()
    receiver = WebhookReceiver(store=store, auth_headers={"Authorization": TOKEN})
    async with serve(receiver) as client:
        response = await client.post(PATH, data=body, headers={"Authorization": TOKEN})
        assert response.status == 200
        stranger = await client.post(PATH, data=body)
        assert stranger.status == 401  # authentication comes first
    assert (receiver.stats.received, receiver.stats.invalid, receiver.stats.rejected) == (1, 1, 1)
    assert store.calls == 0
    assert "webhook body ignored" in caplog.text


async def test_duplicates_reach_the_callbacks_once() -> None:
    seen = Recorder()
    receiver = WebhookReceiver(on_status=seen.on_status, on_message=seen.on_message)
    twice_in_one = cloud([status("w1", "sent"), status("w1", "sent"), status("w1", "delivered")])
    async with serve(receiver) as client:
        for body in (CLOUD_BATCH, CLOUD_BATCH, CLOUD_BUTTON, CLOUD_BUTTON):
            assert (await client.post(PATH, data=body)).status == 200
        assert (await client.post(PATH, json=twice_in_one)).status == 200
        # The same status redelivered in the other shape, and re-batched with a new one.
        again = onprem([status("wamid.AAA", "read"), status("w2", "read")])
        assert (await client.post(PATH, json=again)).status == 200
    assert sorted(seen.keys) == sorted(
        [
            ("wamid.AAA", "read"),
            ("wamid.BBB", "delivered"),
            ("wamid.CCC", ""),
            ("w1", "sent"),
            ("w1", "delivered"),
            ("w2", "read"),
        ]
    )
    assert receiver.stats.duplicates == 2 + 1 + 1 + 1
    assert receiver.stats.dispatched == 6


async def test_a_failing_callback_is_logged_and_changes_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[str] = []

    async def flaky(status: StatusUpdate) -> None:
        if status.message_id == "wamid.AAA":
            raise RuntimeError("database is down")
        got.append(status.message_id)

    receiver = WebhookReceiver(on_status=flaky)
    async with serve(receiver) as client:
        assert (await client.post(PATH, data=CLOUD_BATCH)).status == 200
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 200
    assert sorted(got) == sorted(["wamid.BBB", WAMID_A])
    assert receiver.stats.callback_errors == 1
    failure = [r for r in caplog.records if r.exc_info]
    assert len(failure) == 1
    assert "wamid.AAA" in failure[0].getMessage()
    assert "database is down" in caplog.text


async def test_a_failing_store_is_500_and_the_redelivery_is_dispatched() -> None:
    seen = Recorder()

    class BrokenOnce(MemoryWebhookStore):
        broken = True

        async def record_webhook(self, notification: Notification) -> Notification:
            if self.broken:
                self.broken = False
                raise OSError("disk full")
            return await super().record_webhook(notification)

    receiver = WebhookReceiver(store=BrokenOnce(), on_status=seen.on_status, queue_size=1)
    async with serve(receiver) as client:
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 500
        assert seen.statuses == []
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 200  # the queue slot is free
    assert [s.message_id for s in seen.statuses] == [WAMID_A]
    assert receiver.stats.store_errors == 1


async def test_when_callbacks_fall_behind_a_post_is_503_and_not_recorded() -> None:
    release = asyncio.Event()
    got: list[str] = []

    async def slow(status: StatusUpdate) -> None:
        await release.wait()
        got.append(status.message_id)

    receiver = WebhookReceiver(on_status=slow, concurrency=1, queue_size=1, queue_timeout=0.05)
    async with serve(receiver) as client:
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 200  # takes the only slot
        assert (await client.post(PATH, data=CLOUD_BATCH)).status == 503
        assert receiver.stats.deferred == 1
        release.set()
        # 360dialog redelivers the 503'd webhook: it was not recorded, so it is dispatched.
        assert (await client.post(PATH, data=CLOUD_BATCH)).status == 200
    assert sorted(got) == sorted([WAMID_A, "wamid.AAA", "wamid.BBB"])
    assert receiver.stats.duplicates == 0


async def test_a_post_waits_for_a_slot_that_frees_within_queue_timeout() -> None:
    release = asyncio.Event()

    async def slow(status: StatusUpdate) -> None:
        await release.wait()

    receiver = WebhookReceiver(on_status=slow, concurrency=1, queue_size=1, queue_timeout=WAIT)
    async with serve(receiver) as client:
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 200
        second = asyncio.ensure_future(client.post(PATH, data=CLOUD_BATCH))
        await asyncio.sleep(0.05)
        assert not second.done()  # backpressure: waiting for the slot
        release.set()
        assert (await second).status == 200


async def test_a_handler_whose_receiver_is_not_running_answers_503() -> None:
    receiver = WebhookReceiver(on_status=Recorder().on_status)
    app = web.Application()
    app.router.add_post(PATH, receiver.handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 503
        async with receiver:
            assert (await client.post(PATH, data=CLOUD_SENT)).status == 200
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 503
    assert receiver.stats.deferred == 2


async def test_stopping_with_a_stuck_callback_counts_and_logs_what_was_abandoned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stuck(status: StatusUpdate) -> None:
        await asyncio.Event().wait()

    receiver = WebhookReceiver(on_status=stuck, concurrency=1, shutdown_timeout=0.05)
    async with serve(receiver) as client:
        assert (await client.post(PATH, data=CLOUD_BATCH)).status == 200  # 2 statuses
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 200  # queued behind
        await asyncio.sleep(0.02)
    assert receiver.stats.abandoned == 3
    assert "3 item(s) not dispatched" in caplog.text
    assert not receiver.running


async def test_a_post_waiting_for_a_slot_when_the_receiver_stops_is_503_and_not_recorded() -> None:
    async def stuck(status: StatusUpdate) -> None:
        await asyncio.Event().wait()

    store = CountingStore()
    receiver = WebhookReceiver(
        store=store, on_status=stuck, concurrency=1, queue_size=1, shutdown_timeout=0.01
    )
    app = web.Application()
    app.router.add_post(PATH, receiver.handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await receiver.start()
        assert (await client.post(PATH, data=CLOUD_SENT)).status == 200
        waiting = asyncio.ensure_future(client.post(PATH, data=CLOUD_BATCH))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await receiver.close()
        assert (await asyncio.wait_for(waiting, WAIT)).status == 503
    assert store.calls == 1
    assert receiver.stats.abandoned == 1


async def test_a_webhook_recorded_while_the_pool_stops_is_counted_abandoned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class SlowStore(MemoryWebhookStore):
        entered, release = asyncio.Event(), asyncio.Event()

        async def record_webhook(self, notification: Notification) -> Notification:
            self.entered.set()
            await self.release.wait()
            return await super().record_webhook(notification)

    seen = Recorder()
    store = SlowStore()
    receiver = WebhookReceiver(store=store, on_status=seen.on_status)
    app = web.Application()
    app.router.add_post(PATH, receiver.handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await receiver.start()
        posting = asyncio.ensure_future(client.post(PATH, data=CLOUD_BATCH))
        await asyncio.wait_for(store.entered.wait(), WAIT)
        await receiver.close()
        store.release.set()
        assert (await asyncio.wait_for(posting, WAIT)).status == 200  # the store has it
    assert seen.statuses == []
    assert receiver.stats.abandoned == 2
    assert "recorded after the callbacks stopped: 2 item(s)" in caplog.text


async def test_a_receiver_runs_once_at_a_time_and_restarts() -> None:
    receiver = WebhookReceiver()
    async with receiver:
        with pytest.raises(RuntimeError, match="already running"):
            await receiver.start()
    async with receiver:
        assert receiver.running


async def test_secrets_never_reach_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = WebhookReceiver(
        auth_headers={"Authorization": TOKEN}, signature_secret=PLATFORM_SECRET
    )
    assert TOKEN not in repr(receiver)
    assert PLATFORM_SECRET not in repr(receiver)
    assert "Authorization" in repr(receiver)
    body = CLOUD_SENT.encode()
    async with serve(receiver) as client:
        await client.post(PATH, data=body, headers={"Authorization": TOKEN + "x"})
        await client.post(PATH, data=body, headers={"Authorization": TOKEN})
        signed = {"Authorization": TOKEN, SIGNATURE_HEADER: sign(body, PLATFORM_SECRET)}
        await client.post(PATH, data=b"junk", headers=signed)
    assert receiver.stats.rejected == 3
    assert caplog.records
    for secret in (TOKEN, PLATFORM_SECRET, "t0ken"):
        assert secret not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"auth_headers": {"Bad Name": "x"}}, "auth_headers"),
        ({"auth_headers": {"Authorization": ""}}, "auth_headers['Authorization']"),
        ({"auth_headers": {"Authorization": " padded"}}, "auth_headers['Authorization']"),
        ({"auth_headers": {"Authorization": "a\r\nb"}}, "auth_headers['Authorization']"),
        ({"auth_headers": {"Authorization": 5}}, "auth_headers['Authorization']"),
        ({"auth_headers": ["Authorization"]}, "auth_headers"),
        ({"signature_secret": ""}, "signature_secret"),
        ({"signature_secret": b"bytes"}, "signature_secret"),
        ({"max_body": 0}, "max_body"),
        ({"max_body": True}, "max_body"),
        ({"concurrency": 0}, "concurrency"),
        ({"queue_size": 1.5}, "queue_size"),
        ({"queue_timeout": -1}, "queue_timeout"),
        ({"shutdown_timeout": float("nan")}, "shutdown_timeout"),
        ({"on_status": "print"}, "on_status"),
        ({"on_message": 3}, "on_message"),
        ({"store": object()}, "store"),
    ],
)
def test_bad_arguments_are_validation_errors(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookReceiver(**kwargs)
    assert caught.value.field == f"WebhookReceiver.{field}"
    for value in kwargs.values():
        if isinstance(value, dict):
            for secret in value.values():
                if isinstance(secret, str) and secret.strip():
                    assert secret not in str(caught.value)


SECRET_CASES: list[dict[str, Any]] = [
    {"auth_headers": {"Authorization": f" {TOKEN}"}},
    {"auth_headers": {"Authorization": f"{TOKEN}\r\n"}},
    {"auth_headers": {"Authorization": TOKEN.encode()}},
    {"auth_headers": {"Bad Name": TOKEN}},
    {"auth_headers": {"Authorization": TOKEN, "X-Other": ""}},
    {"auth_headers": {"Authorization": TOKEN}, "max_body": 0},
    {"auth_headers": {"Authorization": TOKEN}, "store": object()},
    {"signature_secret": f"{PLATFORM_SECRET} "},
    {"signature_secret": PLATFORM_SECRET.encode()},
    {"signature_secret": Secret(f"{PLATFORM_SECRET}\x00")},
    {"signature_secret": PLATFORM_SECRET, "concurrency": -1},
]


@pytest.mark.parametrize("case", range(len(SECRET_CASES)))
def test_no_sdk_frame_of_a_failed_constructor_holds_a_secret(case: int) -> None:
    # Error trackers record every frame's locals; the caller's own frames are the caller's.
    with pytest.raises(ValidationError) as caught:
        WebhookReceiver(**SECRET_CASES[case])
    frames = [
        frame
        for frame, _ in traceback.walk_tb(caught.value.__traceback__)
        if "dialog360_async" in frame.f_code.co_filename
    ]
    assert frames
    for frame in frames:
        shown = repr({name: repr(value) for name, value in frame.f_locals.items()})
        assert "t0ken" not in shown and "pl4tform" not in shown, frame.f_code.co_name
    assert "t0ken" not in str(caught.value) and "pl4tform" not in str(caught.value)


def test_app_path_must_be_absolute() -> None:
    with pytest.raises(ValidationError):
        WebhookReceiver().app("webhook")


async def test_connections_read_at_most_64_kib_at_a_time() -> None:
    # asyncio reads into a new 256 KiB bytes each time, past glibc's mmap threshold: an mmap,
    # an mremap and a munmap for every webhook (_body.small_reads).
    receiver = WebhookReceiver(auth_headers={"Authorization": TOKEN})
    app = receiver.app(PATH)
    sizes: list[object] = []

    @web.middleware
    async def after(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        sizes.append(getattr(request.transport, "max_size", None))
        return response

    app.middlewares.append(after)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for headers in ({"authorization": TOKEN}, {}):  # accepted, then refused (401)
            response = await client.post(PATH, data=CLOUD_SENT, headers=headers)
            assert response.status == (200 if headers else 401)
    assert sizes == [64 * 1024] * 2

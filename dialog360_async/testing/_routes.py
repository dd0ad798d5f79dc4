"""Route handlers of the fake: Cloud at ``/``, On-Premise at ``/v1``, Partner at ``/api/v2``."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from aiohttp import web

from ._bodies import (
    ON_PREM_META,
    BodyError,
    block_users_list,
    drop_nulls,
    meta_body_error,
    meta_error,
    on_prem_error,
    on_prem_id,
    partner_error,
    phone_wa_id,
    wamid,
)
from ._handlers import (
    BAD_WA_ID,
    NOT_ENGAGED,
    REQUEST_BODY,
    BaseApi,
    Reply,
    Server,
    decode_cursor,
    encode_cursor,
    guarded,
    int_param,
    ref,
)
from ._state import Channel

_PARTNER_ROUTE = "/api/v2/partners/{partner_id}/channels/{channel_id}/block_users"
_META_SEND_ROUTE = r"/{version:v\d+(?:\.\d+)?}/{phone_id}/messages"


class Api(BaseApi):
    """The route handlers."""

    # -- Cloud --------------------------------------------------------------------------------

    @guarded
    async def cloud_send(self, request: web.Request) -> web.StreamResponse:
        response, early = self._sent(*self.send(request, cloud=True))
        if early is not None:  # its first status webhook goes out before this answer
            await early
        return response

    @guarded
    async def meta_send(self, request: web.Request) -> web.StreamResponse:
        """Meta's own ``POST /{version}/{phone_id}/messages`` (as pywa and other Cloud API
        clients call it): the bearer token stands for a D360 key, the body is a Cloud body
        whose ``null`` members count as absent."""
        REQUEST_BODY.set(drop_nulls(REQUEST_BODY.get()))
        response, early = self._sent(*self.send(request, cloud=True, key=self.bearer(request)))
        if early is not None:
            await early
        return response

    def _sent(
        self, channel: Channel, to: str, wa_id: str
    ) -> tuple[web.Response, Awaitable[object] | None]:
        """The answer to an accepted Cloud send, and what to await before giving it."""
        message_id = wamid(wa_id, self.fake._next_serial())
        response = web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": wa_id}],
                "messages": [{"id": message_id}],
            }
        )
        return response, self.fake._accepted(channel, wa_id, message_id, "cloud")

    @guarded
    async def cloud_block(self, request: web.Request) -> web.StreamResponse:
        channel = self.d360(request)
        try:
            users = block_users_list(REQUEST_BODY.get(), cloud=True)
        except BodyError as err:
            raise Reply(meta_body_error(err), 400) from None
        if request.method == "DELETE":
            done, failed = self.unblock(channel, users)
            result: dict[str, Any] = {"removed_users": done}
        else:
            done, failed = self.block(channel, users)
            result = {"added_users": done}
        body: dict[str, Any] = {"messaging_product": "whatsapp", "block_users": result}
        if not failed:
            return web.json_response(body)
        result["failed_users"] = failed
        details = "Failed to block some users, see the block_users response list for details"
        if request.method == "DELETE":
            details = details.replace("block", "unblock", 1)
        body["error"] = meta_error(139100, "Failed to block/unblock users", details)["error"]
        return web.json_response(body, status=400)

    @guarded
    async def cloud_list(self, request: web.Request) -> web.StreamResponse:
        channel = self.d360(request)
        query = request.query
        limit = int_param(query, "limit", 100)
        if limit is None or not 1 <= limit <= 10_000:
            raise Reply(meta_error(100, "Invalid parameter", "limit must be 1..10000."), 400)
        wa_ids = list(channel.blocked)
        if "after" in query:
            start = decode_cursor(query["after"])
        elif "before" in query:
            end = decode_cursor(query["before"])
            start = None if end is None else max(0, end - limit)
        else:
            start = 0
        if start is None:
            raise Reply(meta_error(100, "Invalid parameter", "Invalid paging cursor."), 400)
        page = wa_ids[start : start + limit]
        end = start + len(page)
        paging: dict[str, Any] = {
            "cursors": {"before": encode_cursor(start), "after": encode_cursor(end)}
        }
        if end < len(wa_ids):
            after = {"limit": str(limit), "after": encode_cursor(end)}
            paging["next"] = str(request.url.with_query(after))
        if start > 0:
            before = {"limit": str(limit), "before": encode_cursor(start)}
            paging["previous"] = str(request.url.with_query(before))
        if self.fake.list_shape == "meta":
            data: list[Any] = [{"messaging_product": "whatsapp", "wa_id": w} for w in page]
        else:
            data = [{"block_users": [ref(channel.blocked[w], w) for w in page]}]
        return web.json_response({"data": data, "paging": paging})

    # -- On-Premise ---------------------------------------------------------------------------

    @staticmethod
    def _meta() -> dict[str, Any]:
        return {"meta": dict(ON_PREM_META)}

    @guarded
    async def onprem_send(self, request: web.Request) -> web.StreamResponse:
        channel, _, wa_id = self.send(request, cloud=False)
        message_id = on_prem_id()
        response = web.json_response({"messages": [{"id": message_id}], **self._meta()}, status=201)
        early = self.fake._accepted(channel, wa_id, message_id, "on_premise")
        if early is not None:
            await early
        return response

    @staticmethod
    def _onprem_body(request: web.Request) -> dict[str, Any]:
        body = REQUEST_BODY.get()
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise Reply(on_prem_error(1009, "Parameter value is not valid", "Invalid JSON."), 400)
        return body

    @staticmethod
    def _invalid(details: str) -> Reply:
        return Reply(on_prem_error(1009, "Parameter value is not valid", details), 400)

    @guarded
    async def onprem_contacts(self, request: web.Request) -> web.StreamResponse:
        self.d360(request)
        body = self._onprem_body(request)
        if body.get("blocking", "no_wait") not in ("wait", "no_wait"):
            raise self._invalid('blocking must be "wait" or "no_wait".')
        if not isinstance(body.get("force_check", False), bool):
            raise self._invalid("force_check must be a boolean.")
        numbers = body.get("contacts")
        if not isinstance(numbers, list) or not numbers:
            raise self._invalid("contacts must be a non-empty list of phone numbers.")
        contacts: list[dict[str, str]] = []
        for number in numbers:
            if not isinstance(number, str):
                raise self._invalid("contacts must be a non-empty list of phone numbers.")
            wa_id = phone_wa_id(number)
            if wa_id is None:
                contacts.append({"input": number, "status": "invalid"})
            else:
                contacts.append({"input": number, "status": "valid", "wa_id": wa_id})
        return web.json_response({"contacts": contacts, **self._meta()})

    def _onprem_user(self, request: web.Request) -> tuple[Channel, str, dict[str, Any]]:
        channel = self.d360(request)
        wa_id = phone_wa_id(request.match_info["phone"])
        if wa_id is None:
            raise self._invalid(BAD_WA_ID)
        body = self._onprem_body(request)
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) >= 60):
            raise self._invalid("reason must be a string of less than 60 characters.")
        return channel, wa_id, body

    def _onprem_block(self, channel: Channel, wa_id: str, user: str) -> None:
        if not self.fake._is_engaged(channel, wa_id):
            raise Reply(on_prem_error(2048, "Not engaged contact", NOT_ENGAGED), 400)
        if wa_id not in channel.blocked and len(channel.blocked) >= self.fake.blocklist_capacity:
            details = "The blocklist is full."
            raise Reply(on_prem_error(139101, "Blocklist limit reached", details), 400)
        channel.blocked.setdefault(wa_id, user)

    @guarded
    async def onprem_block(self, request: web.Request) -> web.StreamResponse:
        channel, wa_id, _ = self._onprem_user(request)
        self._onprem_block(channel, wa_id, request.match_info["phone"])
        return web.json_response(self._meta())

    @guarded
    async def onprem_unblock(self, request: web.Request) -> web.StreamResponse:
        channel, wa_id, _ = self._onprem_user(request)
        channel.blocked.pop(wa_id, None)
        return web.json_response(self._meta())

    @guarded
    async def onprem_report(self, request: web.Request) -> web.StreamResponse:
        channel, wa_id, body = self._onprem_user(request)
        block = body.get("block", False)
        if not isinstance(block, bool):
            raise self._invalid("block must be a boolean.")
        if body.get("message_id") is not None and not isinstance(body["message_id"], str):
            raise self._invalid("message_id must be a string.")
        if block:
            self._onprem_block(channel, wa_id, request.match_info["phone"])
        elif not self.fake._is_engaged(channel, wa_id):
            raise Reply(on_prem_error(2048, "Not engaged contact", NOT_ENGAGED), 400)
        return web.json_response(self._meta())

    @guarded
    async def onprem_blocklist(self, request: web.Request) -> web.StreamResponse:
        channel = self.d360(request)
        limit = int_param(request.query, "limit", 100)
        offset = int_param(request.query, "offset", 0)
        if limit is None or not 1 <= limit <= 200:
            raise self._invalid("limit must be between 1 and 200.")
        if offset is None:
            raise self._invalid("offset must be a non-negative integer.")
        wa_ids = list(channel.blocked)[offset : offset + limit]
        return web.json_response(
            {
                "contacts": [{"wa_id": f"{wa_id}@s.whatsapp.net"} for wa_id in wa_ids],
                "pagination": {"limit": limit, "offset": offset, "total": len(channel.blocked)},
            }
        )

    # -- Partner ------------------------------------------------------------------------------

    def _partner_channel(self, request: web.Request) -> Channel:
        if not self.fake._partner_authorized(request):
            raise Reply(partner_error("Unauthorized"), 401)
        channel = self.fake._partner_channel(request.match_info["channel_id"])
        if request.match_info["partner_id"] != self.fake.partner_id or channel is None:
            raise Reply(partner_error("Not found"), 404)
        return channel

    @staticmethod
    def _envelope(status: int, message: str, data: Mapping[str, Any]) -> web.Response:
        meta = {"developer_message": message, "http_code": status, "success": status < 400}
        body = {"meta": meta, "status_code": status, "data": dict(data)}
        return web.json_response(body, status=status)

    @guarded
    async def partner_block(self, request: web.Request) -> web.StreamResponse:
        channel = self._partner_channel(request)
        try:
            users = block_users_list(REQUEST_BODY.get(), cloud=False)
        except BodyError as err:
            problem = "field required" if err.missing else err.details
            detail = {"body": {"block_users": [problem]}}
            raise Reply(partner_error("Validation error", detail), 422) from None
        added: list[Any] = []
        removed: list[Any] = []
        if request.method == "DELETE":
            removed, failed = self.unblock(channel, users)
        else:
            added, failed = self.block(channel, users)
        result = {"added_users": added, "removed_users": removed, "failed_users": failed}
        data: dict[str, Any] = {"messaging_product": "whatsapp", "block_users": result}
        if not failed:
            return self._envelope(200, "Request processed successfully", data)
        details = "Failed to block some users, see the block_users response list for details"
        data["errors"] = meta_error(139100, "Failed to block/unblock users", details)["error"]
        return self._envelope(400, "Failed to block/unblock some users", data)

    @guarded
    async def partner_list(self, request: web.Request) -> web.StreamResponse:
        channel = self._partner_channel(request)
        users = [ref(user, wa_id) for wa_id, user in channel.blocked.items()]
        return self._envelope(200, "Request processed successfully", {"block_users": users})


def add_routes(app: web.Application, fake: Server) -> None:
    """Register every API route of the fake on ``app``."""
    api = Api(fake)
    app.router.add_routes(
        [
            web.post("/messages", api.cloud_send),
            web.post("/block_users", api.cloud_block),
            web.delete("/block_users", api.cloud_block),
            web.get("/block_users", api.cloud_list, allow_head=False),
            web.post("/v1/messages", api.onprem_send),
            web.post("/v1/contacts", api.onprem_contacts),
            web.get("/v1/contacts/blocklist", api.onprem_blocklist, allow_head=False),
            web.post("/v1/contacts/{phone}/block", api.onprem_block),
            web.post("/v1/contacts/{phone}/unblock", api.onprem_unblock),
            web.post("/v1/contacts/{phone}/report", api.onprem_report),
            web.post(_PARTNER_ROUTE, api.partner_block),
            web.delete(_PARTNER_ROUTE, api.partner_block),
            web.get(_PARTNER_ROUTE, api.partner_list, allow_head=False),
            web.post(_META_SEND_ROUTE, api.meta_send),
        ]
    )

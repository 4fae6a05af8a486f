"""SMS through Twilio: the inbound and status webhooks, and sending through Twilio's REST API.

Webhooks are checked with twilio's ``RequestValidator`` against ``[server] public_url`` + path (the URL
Twilio signed; behind a reverse proxy the request's own URL differs). Sending uses twilio's async client,
one for the process, pointed at ``[twilio] api_base_url`` when set (a fake in tests, a proxy in production).
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime

from aiohttp import ClientSession, ClientTimeout, web
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.config import TwilioConfig
from bot.intake import Unavailable
from bot.keys import DATABASE, INTAKE
from bot.messages import Inbound
from bot.outbox import SendError
from bot.store.sqlite import Pending, Store

log = logging.getLogger(__name__)

CHANNEL = "sms"
TWILIO_API = "https://api.twilio.com"
MAX_BODY = 64 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_MEDIA = 10
OPTED_OUT = 21610  # Twilio error: the recipient replied STOP
STATUSES = ("queued", "sending", "sent", "delivered", "undelivered", "failed", "read")


class TwilioChannel:
    """Everything SMS: verifying webhooks, turning them into Inbounds, and sending replies."""

    def __init__(self, config: TwilioConfig, public_url: str):
        self.config = config
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(config.auth_token)
        self._client: Client | None = None
        self._http: _TwilioHttp | None = None

    # Inbound ---------------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/twilio/sms", self.inbound), web.post("/twilio/status", self.status)]

    async def _verified_form(self, request: web.Request) -> dict[str, str]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
        if request.content_type != "application/x-www-form-urlencoded":
            log.warning("twilio webhook %s: not a form (%s)", request.path, request.content_type)
            raise web.HTTPUnsupportedMediaType(text="expected application/x-www-form-urlencoded")
        try:
            form = await request.post()
        except (ValueError, LookupError, web.RequestPayloadError):  # bad encoding, unknown charset, bad gzip
            raise web.HTTPBadRequest(text="malformed form") from None
        params = {key: value for key, value in form.items() if isinstance(value, str)}
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self._signed_url(request)
        try:
            valid = bool(signature) and self.validator.validate(url, params, signature)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            log.warning("twilio webhook %s: missing or wrong signature; nothing stored", request.path)
            raise web.HTTPForbidden(text="invalid signature")
        return params

    def _signed_url(self, request: web.Request) -> str:
        """The URL Twilio requested: the configured public URL (which may carry a proxy's path prefix), this
        path, and the query as received. Without a public URL, the request's own URL."""
        if not self.public_url:
            return str(request.url)
        raw_query = request.rel_url.raw_query_string  # as Twilio sent and signed it, still percent-encoded
        query = f"?{raw_query}" if raw_query else ""
        return f"{self.public_url}{request.path}{query}"

    async def inbound(self, request: web.Request) -> web.Response:
        params = await self._verified_form(request)
        sid, sender = params.get("MessageSid") or params.get("SmsSid"), params.get("From")
        if not sid or not sender:
            log.warning("twilio webhook: no MessageSid or From; nothing stored")
            raise web.HTTPBadRequest(text="MessageSid and From are required")
        text = params.get("Body", "")
        if params.get("OptOutType", "").upper() == "STOP":
            text = "STOP"  # Twilio's Advanced Opt-Out recognised an opt-out word in the worker's language
        media = tuple(params[f"MediaUrl{i}"] for i in range(MAX_MEDIA) if params.get(f"MediaUrl{i}"))
        inbound = Inbound(channel=CHANNEL, address=sender, provider_id=sid, text=text,
                          received_at=datetime.now(UTC), media=media)
        try:
            await request.app[INTAKE].submit(inbound)
        except Unavailable:
            raise web.HTTPServiceUnavailable(text="try again", headers={"Retry-After": "5"}) from None
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def status(self, request: web.Request) -> web.Response:
        params = await self._verified_form(request)
        sid, status = params.get("MessageSid"), params.get("MessageStatus", "").lower()
        if not sid or status not in STATUSES:
            raise web.HTTPBadRequest(text="MessageSid and a known MessageStatus are required")
        error = params.get("ErrorCode")
        try:
            await request.app[DATABASE].call(Store.record_status, CHANNEL, sid, status, error)
        except Exception:
            log.exception("could not record a delivery status")
            raise web.HTTPServiceUnavailable(text="try again") from None
        return web.Response(status=204)

    # Outbound --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Make the one HTTP client of the process (it must be made inside the running event loop)."""
        self._http = _TwilioHttp(self.config.api_base_url or TWILIO_API)
        self._client = Client(self.config.account_sid, self.config.auth_token, http_client=self._http)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, pending: Pending) -> str | None:
        assert self._client is not None, "TwilioChannel.start() was not awaited"
        kwargs: dict = {"to": pending.address, "body": pending.body.get("text", "")}
        if self.config.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.config.messaging_service_sid
        else:
            kwargs["from_"] = self.config.from_number
        if self.public_url:
            kwargs["status_callback"] = f"{self.public_url}/twilio/status"
        try:
            message = await self._client.messages.create_async(**kwargs)
        except TwilioRestException as error:
            if error.code == OPTED_OUT:
                raise SendError("the worker opted out (21610)", permanent=True, code=str(error.code),
                                opted_out=True) from None
            if error.status >= 500:
                raise SendError(f"Twilio {error.status}: {error.msg}") from None
            raise SendError(f"Twilio {error.status} ({error.code}): {error.msg}", permanent=True,
                            code=str(error.code)) from None
        except (OSError, TimeoutError) as error:
            raise SendError(f"network: {error!r}") from None
        return message.sid


class _TwilioHttp(AsyncTwilioHttpClient):
    """twilio's aiohttp client, sent to ``base_url`` instead of api.twilio.com, with a 15 s timeout, and
    429 answers turned into a retry at the time Twilio asks for."""

    def __init__(self, base_url: str):
        super().__init__(pool_connections=False)
        self.base_url = base_url.rstrip("/")
        self.session = ClientSession(timeout=ClientTimeout(total=15))

    async def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                      allow_redirects=False):
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API):]
        if auth is not None:  # as a header: aiohttp deprecates the auth= argument twilio would pass
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        response = await super().request(method, url, params, data, headers, None, None, allow_redirects)
        if response.status_code == 429:
            raise SendError("Twilio 429: too many requests", retry_after=_seconds(response.headers.get("Retry-After")))
        return response


def _seconds(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else 5.0
    except ValueError:
        return 5.0

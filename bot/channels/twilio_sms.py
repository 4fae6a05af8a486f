"""SMS through Twilio: the inbound and status webhooks, and sending through Twilio's REST API.

Webhooks are checked with twilio's ``RequestValidator`` against ``[server] public_url`` + path (the URL
Twilio signed; behind a reverse proxy the request's own URL differs). Sending is one POST to Twilio's
Messages API on one aiohttp session for the process, at ``[twilio] api_base_url`` when set (a fake in tests,
a proxy in production).
"""

from __future__ import annotations

import base64
import hmac
import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote_plus, urlencode

from aiohttp import ClientConnectorError, ClientError, ClientResponse, ClientSession, ClientTimeout, web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

from bot.config import TwilioConfig
from bot.health import ChannelDown
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
CREDENTIALS_REFUSED = "Twilio refused the account SID or auth token"
UNREACHABLE = "cannot reach Twilio"
PAGE_SIZE = 1000  # Twilio's largest page of the Messages list
MAX_PAGES = 20  # a worker's whole history with the helpline fits many times over


class TwilioChannel:
    """Everything SMS: verifying webhooks, turning them into Inbounds, and sending replies."""

    name = CHANNEL
    settings = "[twilio] account_sid, auth_token and api_base_url"

    def __init__(self, config: TwilioConfig, public_url: str):
        self.config = config
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(config.auth_token)
        self._session: ClientSession | None = None
        self.api_base_url = base = (config.api_base_url or TWILIO_API).rstrip("/")
        self._account_url = f"{base}/2010-04-01/Accounts/{config.account_sid}.json"
        self._messages_url = f"{base}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        token = base64.b64encode(f"{config.account_sid}:{config.auth_token}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/x-www-form-urlencoded",
                         "Accept": "application/json"}
        self._list_headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        sender = ({"MessagingServiceSid": config.messaging_service_sid} if config.messaging_service_sid
                  else {"From": config.from_number})
        if self.public_url:
            sender["StatusCallback"] = f"{self.public_url}/twilio/status"
        self._sender_form = urlencode(sender)

    # Inbound ---------------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [*self.message_routes(), web.post("/twilio/status", self.status)]

    def message_routes(self) -> list[web.RouteDef]:
        """The webhooks that carry workers' messages (the front process reads them itself)."""
        return [web.post("/twilio/sms", self.inbound)]

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
        if any(not isinstance(value, str) for value in form.values()):
            raise web.HTTPBadRequest(text="a Twilio webhook carries no files")
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self._signed_url(request)
        try:
            # The form itself, not a dict of it: every value of a repeated field is signed, and twilio reads a
            # multidict with one call per field (a dict costs it two exceptions a field: 3x the time).
            valid = bool(signature) and self._signed_by_twilio(url, form, signature)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            log.warning("twilio webhook %s: missing or wrong signature; nothing stored", request.path)
            raise web.HTTPForbidden(text="invalid signature")
        return dict(form)

    def _signed_by_twilio(self, url: str, params: MultiDictProxy[str], signature: str) -> bool:
        """The signature over the URL as configured, which is what Twilio signs; failing that, twilio's full
        check, which also tries the URL with and without its port (and so computes two signatures)."""
        return (hmac.compare_digest(self.validator.compute_signature(url, params), signature)
                or self.validator.validate(url, params, signature))

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

    async def set_up(self) -> None:
        """One look at the account (`Fetch an Account`): Twilio is reachable and takes the credentials. Receiving
        needs nothing here (the webhooks are set in Twilio's console). Raises :class:`~bot.health.ChannelDown`."""
        assert self._session is not None, "TwilioChannel.start_sending() was not awaited"
        try:
            async with self._session.get(self._account_url, headers={"Authorization": self._headers["Authorization"],
                                                                     "Accept": "application/json"}) as response:
                answer = await _json(response)
        except (OSError, TimeoutError, ClientError):
            raise ChannelDown(UNREACHABLE, f"the network and [twilio] api_base_url (now {self.api_base_url})") \
                from None
        if response.status in (401, 403):
            raise ChannelDown(CREDENTIALS_REFUSED,
                              "[twilio] account_sid and auth_token (or HELPLINE_TWILIO_AUTH_TOKEN)")
        if response.status >= 500:
            raise ChannelDown(f"Twilio answered {response.status}", "Twilio's status page, status.twilio.com")
        if answer.get("status") in ("suspended", "closed"):
            raise ChannelDown(f"the Twilio account is {answer['status']}", "the account in Twilio's console")
        # Anything else (a proxy at api_base_url that only passes Messages on, say) does not hold SMS back.

    async def start_sending(self) -> None:
        """Make the one HTTP session of the process (it must be made inside the running event loop)."""
        self._session = ClientSession(timeout=ClientTimeout(total=15))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, pending: Pending) -> str | None:
        """POST one message to Twilio's Messages API (`Create a Message`) and return its SID.

        One form-encoded request on the shared session, as twilio's own client sends it, without the
        client's object layers: those cost 0.27 ms of CPU a message against 0.10 ms for this (bench/RESULTS.md),
        a quarter of everything the bot spends on an SMS."""
        assert self._session is not None, "TwilioChannel.start_sending() was not awaited"
        form = f"To={quote_plus(pending.address)}&Body={_quoted(pending.body.get('text', ''))}&{self._sender_form}"
        try:
            async with self._session.post(self._messages_url, data=form.encode(),
                                          headers=self._headers) as response:
                if response.status == 429:
                    raise SendError("Twilio 429: too many requests",
                                    retry_after=_seconds(response.headers.get("Retry-After")))
                answer = await _json(response)
        except ClientConnectorError as error:  # no connection, so no request: Twilio has not got it
            raise SendError(f"network: {error!r}", down=UNREACHABLE) from None
        except (OSError, TimeoutError, ClientError) as error:  # the request may have reached Twilio
            raise SendError(f"network: {error!r}", down=UNREACHABLE, in_doubt=True) from None
        if response.status < 300 and isinstance(answer.get("sid"), str):
            return answer["sid"]
        code, message = answer.get("code"), answer.get("message") or response.reason
        if code == OPTED_OUT:
            raise SendError("the worker opted out (21610)", permanent=True, code=str(code), opted_out=True)
        if response.status < 300:
            raise SendError(f"Twilio {response.status} without a message SID")
        if response.status >= 500:
            raise SendError(f"Twilio {response.status}: {message}", down=f"Twilio answered {response.status}")
        # "error 21211", not "(21211)": a status and a code side by side would read as one written number.
        if response.status == 401:  # the account's credentials, not this message: it waits for them to be fixed
            raise SendError(f"Twilio 401, error {code}: {message}", code=None if code is None else str(code),
                            down=CREDENTIALS_REFUSED)
        raise SendError(f"Twilio {response.status}, error {code}: {message}", permanent=True,
                        code=None if code is None else str(code))

    async def accepted_since(self, pending: Pending, since: datetime) -> list[str]:
        """The SIDs of the messages Twilio took since ``since`` to this worker, from our number (or messaging
        service), with exactly this text, oldest first: Twilio's Messages list (`Read multiple Message
        resources`), filtered by To and From and read page by page (``next_page_uri``).

        Not filtered by DateSent: a message Twilio took but has not sent yet (queued behind the number's rate,
        which is when a burst is cut short) has no DateSent, so that filter would leave it out and it would be
        sent twice. Raises :class:`SendError` when Twilio cannot be asked."""
        if self._session is None:
            raise SendError("Twilio's client is not started")
        query = {"To": pending.address, "PageSize": str(PAGE_SIZE)}
        if not self.config.messaging_service_sid:
            query["From"] = self.config.from_number
        text = pending.body.get("text", "")
        url: str | None = f"{self._messages_url}?{urlencode(query)}"
        found: list[tuple[datetime, str]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return [sid for _, sid in sorted(found)]
            try:
                async with self._session.get(url, headers=self._list_headers) as response:
                    page = await _json(response)
                    if response.status != 200 or not isinstance(page.get("messages"), list):
                        # (the code only: Twilio's text may quote the number, and this is logged and stored)
                        raise SendError(f"Twilio {response.status} to the Messages list (code {page.get('code')})")
            except (OSError, TimeoutError, ClientError) as error:  # (the URL carries the number: not shown)
                raise SendError(f"network: {type(error).__name__}") from None
            for message in page["messages"]:
                taken = _taken_at(message)
                if (isinstance(message, dict) and message.get("to") == pending.address
                        and message.get("body") == text and isinstance(message.get("sid"), str)
                        and taken is not None and taken >= since and self._ours(message)):
                    found.append((taken, message["sid"]))
            next_page = page.get("next_page_uri")
            url = f"{self.api_base_url}{next_page}" if isinstance(next_page, str) and next_page else None
        raise SendError(f"over {MAX_PAGES * PAGE_SIZE} messages to one number in Twilio's Messages list")

    def _ours(self, message: dict) -> bool:
        if self.config.messaging_service_sid:
            return message.get("messaging_service_sid") == self.config.messaging_service_sid
        return message.get("from") == self.config.from_number


def _taken_at(message: object) -> datetime | None:
    """When Twilio took a message (``date_created``, RFC 2822 as Twilio writes it)."""
    if not isinstance(message, dict) or not isinstance(message.get("date_created"), str):
        return None
    try:
        moment = parsedate_to_datetime(message["date_created"])
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_quoted = lru_cache(maxsize=4096)(quote_plus)  # most replies are the same few texts; quoting is pure Python


async def _json(response: ClientResponse) -> dict:
    try:
        answer = await response.json(content_type=None)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _seconds(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else 5.0
    except ValueError:
        return 5.0

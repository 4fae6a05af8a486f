"""python-telegram-bot's requests made with aiohttp instead of httpx.

PTB leaves the HTTP library to a :class:`~telegram.request.BaseRequest`; its default, ``HTTPXRequest``, cost
3.2 ms of CPU per ``sendMessage`` at 32 sends in flight, against 0.3 ms for this one on the aiohttp session
the rest of the bot already uses (bench/RESULTS.md). PTB still builds every request and reads every answer,
errors included (``RetryAfter``, ``Forbidden``, ...): this class only carries the bytes.
"""

from __future__ import annotations

from urllib.parse import urlencode

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

CONNECT_SECONDS = 5.0
READ_SECONDS = 15.0
UPLOAD_SECONDS = 30.0
FORM = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": BaseRequest.USER_AGENT}
FILES = {"User-Agent": BaseRequest.USER_AGENT}


class AiohttpRequest(BaseRequest):
    """One ``aiohttp.ClientSession``, made in :meth:`initialize` (inside the running loop) and closed in
    :meth:`shutdown`. Timeouts PTB passes per call (a long poll's longer read) are honoured."""

    __slots__ = ("_session", "_default_timeout")

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._default_timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_SECONDS, sock_read=READ_SECONDS)

    @property
    def read_timeout(self) -> float:
        return READ_SECONDS

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._default_timeout)

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout=BaseRequest.DEFAULT_NONE, write_timeout=BaseRequest.DEFAULT_NONE,
                         connect_timeout=BaseRequest.DEFAULT_NONE,
                         pool_timeout=BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest.initialize() was not awaited")
        parameters = request_data.json_parameters if request_data else {}
        if request_data is not None and request_data.multipart_data:
            form = aiohttp.FormData(parameters)
            for name, (filename, content, *_) in request_data.multipart_data.items():
                form.add_field(name, content, filename=filename)
            data, headers = form, FILES
        else:
            data, headers = urlencode(parameters).encode(), FORM
        timeout = self._timeout(read_timeout, connect_timeout, bool(request_data and request_data.contains_files))
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as error:  # asyncio's and aiohttp's timeouts are both TimeoutError
            raise TimedOut from error
        except (aiohttp.ClientError, OSError) as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error

    def _timeout(self, read, connect, upload: bool) -> aiohttp.ClientTimeout:
        if read is BaseRequest.DEFAULT_NONE and connect is BaseRequest.DEFAULT_NONE and not upload:
            return self._default_timeout
        return aiohttp.ClientTimeout(total=UPLOAD_SECONDS if upload else None,
                                     sock_connect=CONNECT_SECONDS if connect is BaseRequest.DEFAULT_NONE else connect,
                                     sock_read=READ_SECONDS if read is BaseRequest.DEFAULT_NONE else read)

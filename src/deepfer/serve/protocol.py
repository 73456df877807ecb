"""uvicorn's HTTP/1.1 protocol with a deadline on request headers.

uvicorn (0.55) times out idle keep-alive connections only between requests, and every byte that
arrives cancels that timer; h11 has no header timeout at all. So a client that sends its request
line and headers a byte every few seconds holds a connection for ever, and a few hundred such
clients fill uvicorn's ``limit_concurrency`` (every request then gets a plain-text 503). This
protocol gives each request :data:`HEADER_TIMEOUT` seconds, from the connection's start or the end
of the previous response, to deliver its complete headers, then answers 408 and closes. The body's
own deadline is the app's (``read_timeout``). ``benchmarks/fuzz.py --hostile`` measures it
(``benchmarks/FUZZ.md``).

What this does not bound: many clients each opening connections faster than the deadline closes
them. A server reachable beyond loopback belongs behind a reverse proxy that limits connections per
client address and times out headers itself (nginx: ``limit_conn``, ``client_header_timeout``).
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 5.0  # seconds for a request line and its headers (a browser needs milliseconds)

_BODY = json.dumps({"error": "request headers not received in time"}).encode()
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
              b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


class HeaderTimeoutProtocol(H11Protocol):
    """:class:`uvicorn.protocols.http.h11_impl.H11Protocol` that closes a connection whose next
    request's headers are not complete within :attr:`header_timeout` seconds (pass the class as
    ``uvicorn.run(..., http=HeaderTimeoutProtocol)``)."""

    header_timeout = HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the headers are in: the app's deadlines apply
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request on this connection gets its own deadline

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE:  # nothing of a response sent on this cycle
            self.transport.write(_TIMED_OUT)
        self.transport.close()

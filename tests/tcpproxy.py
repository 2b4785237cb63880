"""A loopback TCP proxy that breaks the link on command, for fault tests of the sync layer.

``TcpProxy`` listens on 127.0.0.1 and relays every connection to one upstream address (e.g. a
pouchdb-server), one thread per connection. Between the client and the server it can:

* ``cut(match, request_bytes=N)``: on the next connection whose client stream contains
  ``match`` (e.g. ``b"/_bulk_docs"``), relay only ``N`` bytes counted from the start of the
  match, then break the connection: the server never gets the whole request;
* ``cut(match, response_bytes=N)``: relay the whole request and only the first ``N`` bytes of
  the answer, then break: the server did the work, the client never hears of it;
* ``drop_next(n)``: accept the next ``n`` connections and break them at once;
* ``reset_all()``: break every open connection (pooled keep-alive ones included);
* ``refuse()`` / ``refuse_for(seconds)`` / ``restore()``: stop listening, so connecting is
  refused, and listen again on the same port;
* ``blackhole()`` / ``restore()``: a half-open link. Connections (open and new) are accepted and
  read but nothing is relayed either way and nothing is answered, until the client gives up.
  ``restore()`` relays new connections again; the frozen ones stay dead, as after a real outage.

"Break" is a TCP reset (``SO_LINGER`` 0) by default, or an orderly close (FIN) with
``reset=False``. Counters (``connections``, ``cuts``, ``dropped``) let a test check that a fault
really happened. Real sockets and threads only; nothing is mocked.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Cut", "TcpProxy"]

_CHUNK = 65536
_POLL = 0.05  # seconds: how often idle threads look at the proxy's state
_TAIL = 256  # bytes of client stream kept to find a match split across two reads


@dataclass
class Cut:
    """One armed fault: break the next connection whose client stream contains ``match``."""

    match: bytes
    request_bytes: int | None = None
    response_bytes: int | None = None
    reset: bool = True


def _hard_close(sock: socket.socket, reset: bool) -> None:
    """Close ``sock``; with ``reset`` the peer gets a TCP RST instead of a FIN."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class _Link:
    """One client connection and its upstream connection, relayed by one thread."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, frozen: bool) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.frozen = frozen
        self.closed = threading.Event()
        self.reset_requested = False
        self._tail = b""  # the end of the client stream, to find a match split across reads
        self._upload_left: int | None = None  # request bytes still to relay before the cut
        self._download_left: int | None = None  # response bytes still to relay before the cut
        self._cut: Cut | None = None

    def run(self) -> None:
        """Relay until either side closes or a fault breaks the link."""
        try:
            if not self.frozen:
                try:
                    self.upstream = socket.create_connection(self.proxy.upstream, timeout=5.0)
                except OSError:
                    _hard_close(self.client, True)
                    return
            self._relay()
        finally:
            self._close(reset=self.reset_requested)
            self.proxy._forget(self)

    def _relay(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.client, selectors.EVENT_READ, "client")
            if self.upstream is not None:
                selector.register(self.upstream, selectors.EVENT_READ, "upstream")
            while not self.reset_requested and not self.proxy.stopped:
                for key, _ in selector.select(_POLL):
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = sock.recv(_CHUNK)
                    except OSError:
                        return
                    if not data:
                        return
                    if self.frozen:
                        continue  # a dead link: swallow everything, answer nothing
                    try:
                        relayed = (
                            self._from_client(data)
                            if key.data == "client"
                            else self._from_upstream(data)
                        )
                    except OSError:  # the other side is gone
                        return
                    if not relayed:
                        return

    def _from_client(self, data: bytes) -> bool:
        """Relay client bytes; False once the link was cut."""
        assert self.upstream is not None
        if self._cut is None:
            self._arm(data)
        if self._upload_left is not None:
            sent = data[: max(self._upload_left, 0)]
            self._upload_left -= len(data)
            if self._upload_left <= 0:
                if sent:
                    self.upstream.sendall(sent)
                self._break()
                return False
        self.upstream.sendall(data)
        return True

    def _arm(self, data: bytes) -> None:
        """Claim the first armed cut whose match ``data`` carries, if any."""
        window = self._tail + data
        self._tail = window[-_TAIL:]
        claimed = self.proxy._claim(window, len(window) - len(data))
        if claimed is None:
            return
        cut, at = claimed
        self._cut = cut
        if cut.request_bytes is not None:
            # the bytes of ``data`` before the match, plus the allowance from its start
            self._upload_left = at - (len(window) - len(data)) + cut.request_bytes
        else:
            self._download_left = cut.response_bytes or 0

    def _from_upstream(self, data: bytes) -> bool:
        """Relay server bytes; False once the link was cut."""
        if self._download_left is not None:
            self.client.sendall(data[: self._download_left])
            self._download_left -= len(data)
            if self._download_left <= 0:
                self._break()
                return False
            return True
        self.client.sendall(data)
        return True

    def _break(self) -> None:
        assert self._cut is not None
        self.reset_requested = self._cut.reset
        self._close(reset=self._cut.reset)
        self.proxy._count("cuts")

    def _close(self, reset: bool) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        _hard_close(self.client, reset)
        if self.upstream is not None:
            _hard_close(self.upstream, reset)


class TcpProxy:
    """A TCP relay on 127.0.0.1 in front of ``upstream`` that can cut, drop, refuse or stall."""

    def __init__(self, upstream: tuple[str, int] | str) -> None:
        """``upstream`` is ``(host, port)`` or an ``http://`` URL (credentials are ignored)."""
        if isinstance(upstream, str):
            parts = urlsplit(upstream)
            upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.upstream: tuple[str, int] = upstream
        self.stopped = False
        self.connections = 0
        """Connections accepted so far (dropped ones included)."""
        self.cuts = 0
        """Connections broken by a ``cut``."""
        self.dropped = 0
        """Connections broken at once by ``drop_next``."""
        self._lock = threading.Lock()
        self._cuts: list[Cut] = []
        self._drop = 0
        self._blackhole = False
        self._links: set[_Link] = set()
        self._refusing = threading.Event()
        self._listening = threading.Event()
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="tcpproxy", daemon=True)
        self._acceptor.start()

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and break every open connection."""
        self.stopped = True
        self._refusing.clear()
        self._acceptor.join(timeout=5)
        self.reset_all()

    def url(self, base: str) -> str:
        """``base`` (an http URL, credentials kept) pointed at the proxy instead."""
        parts = urlsplit(base)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{self.port}"))

    # -- faults -------------------------------------------------------------------------------

    def cut(
        self,
        match: bytes,
        *,
        request_bytes: int | None = None,
        response_bytes: int | None = None,
        times: int = 1,
        reset: bool = True,
    ) -> None:
        """Break the next ``times`` connections whose client stream contains ``match``.

        With ``request_bytes`` the request is relayed only that far (counted from the start
        of the match); otherwise the whole request goes through and only ``response_bytes``
        (default 0) of the answer come back.
        """
        if request_bytes is not None and response_bytes is not None:
            raise ValueError("give request_bytes or response_bytes, not both")
        with self._lock:
            for _ in range(times):
                self._cuts.append(Cut(match, request_bytes, response_bytes, reset))

    @property
    def pending_cuts(self) -> int:
        """Cuts armed but not yet done."""
        with self._lock:
            return len(self._cuts)

    def drop_next(self, count: int = 1) -> None:
        """Accept the next ``count`` connections and reset them before relaying anything."""
        with self._lock:
            self._drop += count

    def reset_all(self) -> None:
        """Reset every open connection (a link that went down under them)."""
        with self._lock:
            links = list(self._links)
        for link in links:
            link.reset_requested = True
        for link in links:
            link.closed.wait(timeout=2)

    def refuse(self) -> None:
        """Stop listening: new connections are refused until ``restore``. Open ones go on."""
        self._refusing.set()
        deadline = time.monotonic() + 5
        while self._listening.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("the proxy did not stop listening")
            time.sleep(0.005)

    def refuse_for(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, then listen again (in the background)."""
        self.refuse()
        timer = threading.Timer(seconds, self.restore)
        timer.daemon = True
        timer.start()

    def blackhole(self) -> None:
        """Freeze every open and new connection: accepted, read, never answered."""
        with self._lock:
            self._blackhole = True
            for link in self._links:
                link.frozen = True

    def restore(self) -> None:
        """Listen and relay again (frozen connections stay dead)."""
        with self._lock:
            self._blackhole = False
        if self._refusing.is_set():
            self._refusing.clear()
            deadline = time.monotonic() + 5
            while not self._listening.is_set():
                if time.monotonic() > deadline:
                    raise TimeoutError("the proxy did not listen again")
                time.sleep(0.005)

    # -- inside -------------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(_POLL)
        self._listening.set()
        return listener

    def _accept_loop(self) -> None:
        listener: socket.socket | None = self._listener
        try:
            while not self.stopped:
                if self._refusing.is_set():
                    if listener is not None:
                        listener.close()
                        listener = None
                        self._listening.clear()
                    time.sleep(0.005)
                    continue
                if listener is None:
                    listener = self._listen(self.port)
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self.stopped:
                        return
                    raise
                client.settimeout(None)
                self._start_link(client)
        finally:
            if listener is not None:
                listener.close()
            self._listening.clear()

    def _start_link(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            if self._drop:
                self._drop -= 1
                self.dropped += 1
                _hard_close(client, True)
                return
            link = _Link(self, client, frozen=self._blackhole)
            self._links.add(link)
        threading.Thread(target=link.run, name="tcpproxy-link", daemon=True).start()

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _claim(self, window: bytes, new: int) -> tuple[Cut, int] | None:
        """Take the first armed cut whose match ends in ``window[new:]``, with its offset."""
        with self._lock:
            for index, cut in enumerate(self._cuts):
                at = window.find(cut.match, max(0, new - len(cut.match) + 1))
                if at >= 0:
                    del self._cuts[index]
                    return cut, at
            return None

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

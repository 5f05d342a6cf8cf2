"""Clients of wsat's HTTP + JSON control APIs, on the standard library only:
`Control` for the modem's (`wsat --control ADDR`: modems, links, faults),
`PeerControl` for the scriptable peer's (`wsat peer --control ADDR`).

A 4xx or 5xx answer raises `ControlError` with the API's own `error`
message; every request has a timeout.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple, Union

#: Seconds one request may take (the modem's API answers within 5).
REQUEST_TIMEOUT = 10.0
#: How long `wait_modem()` and `wait_connection()` wait by default.
WAIT_TIMEOUT = 5.0
#: How often they ask.
POLL_INTERVAL = 0.02


class ControlError(Exception):
    """A request to a control API failed: `status` is the HTTP status (None
    when there was no answer at all) and `message` the API's `error` text."""

    def __init__(self, method: str, url: str, status: Optional[int], message: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.message = message
        where = f"{method} {url}"
        super().__init__(f"{where}: {status} {message}" if status else f"{where}: {message}")


class _Client:
    def __init__(self, address: Tuple[str, int], timeout: float = REQUEST_TIMEOUT) -> None:
        host, port = address
        self.address = (host, port)
        host = f"[{host}]" if ":" in host else host
        #: The API's base URL, `http://127.0.0.1:PORT`.
        self.url = f"http://{host}:{port}"
        self.timeout = timeout
        # No proxy: the API is on this machine whatever http_proxy says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """`method` `path` with `body` as JSON (if not None); the decoded
        JSON answer (None for an empty one)."""
        url = self.url + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(req, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode("utf-8", "replace").strip() or err.reason
            raise ControlError(method, url, err.code, str(message)) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ControlError(method, url, None, f"no answer ({reason})") from None
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, {} if body is None else body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def _wait(self, what: str, find, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            found = find()
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} within {timeout:g} s ({self.url})")
            time.sleep(POLL_INTERVAL)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


Link = str
"""A link as the API names it: `ws0`..`ws2`, `socket0`..`socket4`."""


class Control(_Client):
    """The modem's control API (README, "Faults on cue").

    Every fault is for one modem. `modem=None` means "the one modem": the
    first of `modems()` (the lowest id), waited for with `wait_modem()` (with
    `--tcp` a modem exists once a host has connected). Pass an id when a test
    has several hosts.
    """

    def modems(self) -> List[Dict[str, Any]]:
        """Every modem: `id`, `port`, `firmware`, `station`, `links` (each
        `link`, `state`, `peer`, `bytes_sent`, `bytes_received`)."""
        return self.get("/modems")

    def modem(self, modem: Optional[int] = None) -> Dict[str, Any]:
        """One modem, as in `modems()`."""
        return self.get(f"/modems/{self._id(modem)}")

    def wait_modem(self, timeout: float = WAIT_TIMEOUT, count: int = 1) -> int:
        """Waits until at least `count` modems exist; the id of the first."""

        def first():
            modems = self.modems()
            return modems[0]["id"] if len(modems) >= count else None

        return self._wait(f"no {count} modem(s)", first, timeout)

    def _id(self, modem: Optional[int]) -> int:
        return self.wait_modem() if modem is None else int(modem)

    def fault(self, fault: str, modem: Optional[int] = None, **fields: Any) -> Dict[str, Any]:
        """Any fault: `fault("stall", link="ws0", ms=500)` posts
        `{"fault": "stall", "link": "ws0", "ms": 500}` to the modem."""
        return self.post(f"/modems/{self._id(modem)}/faults", {"fault": fault, **fields})

    def answer(
        self, prefix: str, answer: Union[str, int] = "error", modem: Optional[int] = None
    ) -> Dict[str, Any]:
        """The next command starting with `prefix` is not run but answered
        `"error"` (`ERROR`), `"busy"` (`busy p...`) or, given a number,
        `ERR CODE:0x<number>` and `ERROR`."""
        spec: Any = {"err_code": answer} if isinstance(answer, int) else answer
        return self.fault("answer", modem, prefix=prefix, answer=spec)

    def report(
        self, data: Union[str, bytes], when: str = "now", modem: Optional[int] = None
    ) -> Dict[str, Any]:
        """Unasked bytes for the host: `when` is `"now"`, `"after_ok"` (right
        after the next `OK`) or `"in_echo"` (inside the next command's echo)."""
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return self.fault("report", modem, data=data, when=when)

    def reboot(self, modem: Optional[int] = None) -> Dict[str, Any]:
        """The module restarts by itself: links dropped, `ready` after
        `--restart-delay`."""
        return self.fault("reboot", modem)

    def ap_lost(self, modem: Optional[int] = None) -> Dict[str, Any]:
        """The access point goes away (`WIFI DISCONNECT`, links closed)."""
        return self.fault("ap_lost", modem)

    def ap_back(self, modem: Optional[int] = None) -> Dict[str, Any]:
        """The access point is back (`WIFI CONNECTED`, `WIFI GOT IP`)."""
        return self.fault("ap_back", modem)

    def chunk_output(self, bytes: int, delay_ms: int, modem: Optional[int] = None) -> Dict[str, Any]:
        """The AT port's output in writes of at most `bytes`, `delay_ms`
        apart (`bytes=0`: off)."""
        return self.fault("chunk_output", modem, bytes=bytes, delay_ms=delay_ms)

    def reset(self, link: Link, modem: Optional[int] = None) -> Dict[str, Any]:
        """The link's connection breaks now."""
        return self.fault("reset", modem, link=link)

    def stall(self, link: Link, ms: int, modem: Optional[int] = None) -> Dict[str, Any]:
        """Nothing moves on the link for `ms`."""
        return self.fault("stall", modem, link=link, ms=ms)

    def shape(
        self, link: Link, latency_ms: int = 0, bytes_per_s: int = 0, modem: Optional[int] = None
    ) -> Dict[str, Any]:
        """The link's traffic `latency_ms` late each way and paced to
        `bytes_per_s` (0: no cap); both 0: normal again."""
        return self.fault("shape", modem, link=link, latency_ms=latency_ms, bytes_per_s=bytes_per_s)

    def fail_connect(
        self, how: Union[str, int], link: Optional[Link] = None, modem: Optional[int] = None
    ) -> Dict[str, Any]:
        """The next connect (of `link`, or of any link) fails: `"refused"`,
        `"dns"`, `"tls"`, or, given a number, the WebSocket handshake is
        answered with that HTTP status."""
        spec: Any = {"http_status": how} if isinstance(how, int) else how
        fields: Dict[str, Any] = {"how": spec}
        if link is not None:
            fields["link"] = link
        return self.fault("fail_connect", modem, **fields)


class PeerControl(_Client):
    """The scriptable peer's control API (`wsat peer --control ADDR`).

    `conn=None` means the first connection of `connections()`, waited for
    with `wait_connection()`. Each method passes its keyword fields on as the
    JSON body, so fields the peer adds need no change here.
    """

    def connections(self) -> List[Dict[str, Any]]:
        return self.get("/connections")

    def connection(self, conn: Optional[int] = None) -> Dict[str, Any]:
        return self.get(f"/connections/{self._id(conn)}")

    def wait_connection(self, timeout: float = WAIT_TIMEOUT, count: int = 1) -> int:
        """Waits until at least `count` connections exist; the id of the first."""

        def first():
            conns = self.connections()
            return conns[0]["id"] if len(conns) >= count else None

        return self._wait(f"no {count} connection(s)", first, timeout)

    def _id(self, conn: Optional[int]) -> int:
        return self.wait_connection() if conn is None else int(conn)

    def _act(self, conn: Optional[int], action: str, fields: Dict[str, Any]) -> Any:
        body = {k: v for k, v in fields.items() if v is not None}
        return self.post(f"/connections/{self._id(conn)}/{action}", body)

    def send(
        self, conn: Optional[int] = None, data: Union[str, bytes, None] = None, **fields: Any
    ) -> Any:
        """A message to the host: `data` as text, bytes as a binary message
        (sent as `hex`), or one the peer makes (`size=..., fragments=...,
        type="binary"`)."""
        if isinstance(data, bytes):
            fields.setdefault("type", "binary")
            fields["hex"] = data.hex()
        elif data is not None:
            fields["data"] = data
        return self._act(conn, "send", fields)

    def ping(self, conn: Optional[int] = None, **fields: Any) -> Any:
        """A ping (`payload=...`)."""
        return self._act(conn, "ping", fields)

    def close(self, conn: Optional[int] = None, **fields: Any) -> Any:
        """A close handshake (`code=..., reason=...`)."""
        return self._act(conn, "close", fields)

    def drop(self, conn: Optional[int] = None, **fields: Any) -> Any:
        """The TCP connection goes without a close (`how="rst"` or `"fin"`)."""
        return self._act(conn, "drop", fields)

    def stall(self, conn: Optional[int] = None, **fields: Any) -> Any:
        """The peer stops reading and writing the connection (`ms=...`)."""
        return self._act(conn, "stall", fields)

    def handshake(self, **fields: Any) -> Any:
        """How the next handshakes are answered (`PUT /handshake`, e.g.
        `mode="status", status=503`)."""
        return self.put("/handshake", fields)

    def mode(self, **fields: Any) -> Any:
        """The peer's mode (`PUT /mode`, e.g. `echo=False`)."""
        return self.put("/mode", fields)

    def log(self, n: Optional[int] = None) -> Any:
        """What the peer saw and did (`GET /log`)."""
        query = "" if n is None else "?" + urllib.parse.urlencode({"n": n})
        return self.get("/log" + query)

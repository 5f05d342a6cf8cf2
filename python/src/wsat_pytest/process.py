"""Starting and stopping the wsat binary: the modem (`Wsat`) and the
scriptable WebSocket peer (`Peer`).

Every wait here is bounded, and a thread reads the process's stderr to its
end, so the process never blocks on a full pipe.
"""

from __future__ import annotations

import atexit
import collections
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .control import Control, PeerControl

#: How long the binary may take to bind its ports and say so.
START_TIMEOUT = 20.0
#: How long `stop()` waits after SIGTERM, and again after SIGKILL.
STOP_TIMEOUT = 5.0
#: Lines of stderr kept (the oldest go first).
STDERR_KEPT = 10_000

# What the binary prints on stderr once a port is bound. This table and
# `parse_startup_line` are the one place that knows these lines.
_STARTUP = (
    # wsat --tcp ADDR:     listening on 127.0.0.1:2323
    ("tcp", re.compile(r"^listening on (?P<addr>\S+)\s*$")),
    # wsat --pty PATH:     pty /dev/pts/3 at /tmp/ttyWSAT
    ("pty", re.compile(r"^pty (?P<device>\S+) at (?P<path>.+?)\s*$")),
    # wsat peer ADDR:      peer listening on 127.0.0.1:8766
    ("peer", re.compile(r"^peer listening on (?P<addr>\S+)\s*$")),
    # wsat peer --control: peer control on 127.0.0.1:8767
    # (also "peer control API on http://ADDR (...)")
    ("peer_control", re.compile(r"^peer control(?: API)? on (?:http://)?(?P<addr>[^\s/]+)")),
    # wsat --control ADDR: control API on http://127.0.0.1:7700 (only this machine can reach it)
    # (also "control on ADDR")
    ("control", re.compile(r"^control(?: API)? on (?:http://)?(?P<addr>[^\s/]+)")),
)


def parse_startup_line(line: str) -> Optional[Tuple[str, Dict[str, str]]]:
    """What a line of wsat's stderr announces, if anything: `("tcp",
    {"addr": ...})`, `("pty", {"device": ..., "path": ...})`, `("control",
    {"addr": ...})`, `("peer", {"addr": ...})` or `("peer_control", {"addr":
    ...})`; None for any other line."""
    for kind, pattern in _STARTUP:
        match = pattern.match(line)
        if match:
            return kind, match.groupdict()
    return None


def parse_address(text: str) -> Tuple[str, int]:
    """`127.0.0.1:2323` or `[::1]:2323` as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not an address with a port: {text!r}")
    return host.strip("[]"), int(port)


class WsatError(Exception):
    """wsat could not be found, did not start, or ended early. The message
    holds what it printed on stderr."""


class WsatNotFound(WsatError):
    """No wsat binary was found."""


class PeerUnavailable(WsatError):
    """The wsat binary has no `peer` subcommand (it is older than the peer)."""


def find_binary(explicit: Optional[str] = None) -> str:
    """The wsat binary to run: `explicit`, else `$WSAT_BIN`, else `wsat` on
    PATH, else the newer of `target/release/wsat` and `target/debug/wsat` in
    `$CARGO_TARGET_DIR`, in the wsat checkout this package is in, or in the
    current directory or one above it that has them."""
    tried: List[str] = []
    for name, value in (("binary", explicit), ("WSAT_BIN", os.environ.get("WSAT_BIN"))):
        if value:
            path = Path(value).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            raise WsatNotFound(f"{name} is {value!r}, which is not an executable file")
    on_path = shutil.which("wsat")
    if on_path:
        return on_path
    tried.append("wsat on PATH")
    targets: List[Path] = []
    if os.environ.get("CARGO_TARGET_DIR"):
        targets.append(Path(os.environ["CARGO_TARGET_DIR"]))
    for folder in _checkouts():
        targets.append(folder / "target")
    for target in targets:
        builds = [target / kind / "wsat" for kind in ("release", "debug")]
        tried.extend(str(b) for b in builds)
        found = [b for b in builds if b.is_file() and os.access(b, os.X_OK)]
        if found:
            return str(max(found, key=lambda b: b.stat().st_mtime))
    raise WsatNotFound(
        "no wsat binary: set WSAT_BIN to one, put wsat on PATH "
        "(`cargo install --path crates/wsat` in wsat's repository), or build it "
        "(`cargo build --release -p wsat`); tried " + ", ".join(tried)
    )


def _checkouts() -> Iterable[Path]:
    """wsat checkouts to look for a build in: the one this file is in (when
    the package runs from its source), then the current directory and its
    parents."""
    seen = set()
    here = Path(__file__).resolve()
    candidates = list(here.parents) + [Path.cwd(), *Path.cwd().parents]
    for folder in candidates:
        if folder in seen:
            continue
        seen.add(folder)
        if (folder / "crates" / "wsat" / "Cargo.toml").is_file() or (folder / "target").is_dir():
            yield folder


# Processes still running when the interpreter exits are stopped then.
_live: "weakref.WeakSet[_Process]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for proc in list(_live):
        proc.stop()


class _Process:
    """A wsat process, its stderr read by a thread, stopped by `stop()`."""

    def __init__(
        self,
        argv: Sequence[str],
        wanted: Sequence[str],
        env: Optional[Mapping[str, str]],
        start_timeout: float,
    ) -> None:
        self.argv: List[str] = list(argv)
        self._lines: Deque[str] = collections.deque(maxlen=STDERR_KEPT)
        self._announced: Dict[str, Dict[str, str]] = {}
        self._changed = threading.Condition()
        self._ended = False
        self._stopped = False
        full_env = dict(os.environ)
        # Plain log lines (no colour codes) in `stderr` and failure reports.
        full_env.setdefault("NO_COLOR", "1")
        if env:
            full_env.update(env)
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        _live.add(self)
        self._reader = threading.Thread(
            target=self._read_stderr, name=f"wsat-stderr-{self._proc.pid}", daemon=True
        )
        self._reader.start()
        try:
            self._wait_startup(wanted, start_timeout)
        except BaseException:
            self.stop()
            raise

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._changed:
                self._lines.append(line)
                parsed = parse_startup_line(line)
                if parsed and parsed[0] not in self._announced:
                    self._announced[parsed[0]] = parsed[1]
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def _wait_startup(self, wanted: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(kind in self._announced for kind in wanted):
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    break
                self._changed.wait(left)
            missing = [kind for kind in wanted if kind not in self._announced]
        if not missing:
            return
        # The process ended (stderr closed) or is still silent.
        try:
            code = self._proc.wait(timeout=1.0)
            what = f"exited with status {code}"
        except subprocess.TimeoutExpired:
            what = f"did not announce {', '.join(missing)} within {timeout:g} s"
        raise self._startup_error(f"{' '.join(self.argv)} {what}")

    def _startup_error(self, what: str) -> WsatError:
        return WsatError(f"{what}; its stderr:\n{self.stderr}")

    def announced(self, kind: str) -> Dict[str, str]:
        with self._changed:
            return dict(self._announced[kind])

    @property
    def stderr(self) -> str:
        """What the process printed on stderr so far (the last lines of it)."""
        with self._changed:
            return "\n".join(self._lines)

    def wait_stderr(self, pattern: str, timeout: float = 5.0) -> Optional[str]:
        """The first stderr line so far or within `timeout` that matches the
        regular expression `pattern` (searched anywhere in the line); None if
        none did in time or the process ended first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines:
                    if regex.search(line):
                        return line
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    return None
                self._changed.wait(left)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> Optional[int]:
        """The exit status once the process ended (negative: the signal)."""
        return self._proc.poll()

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """Ends the process: SIGTERM (wsat then cleans up, e.g. the pty's
        symlink), up to `timeout` seconds, then SIGKILL and up to `timeout`
        more. Returns the exit status (None if even SIGKILL did not end it).
        Calling it again does nothing more."""
        if not self._stopped:
            self._stopped = True
            if self._proc.poll() is None:
                try:
                    self._proc.send_signal(signal.SIGTERM)
                    self._proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    try:
                        self._proc.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        pass
            self._reader.join(timeout=timeout)
            if self._proc.stderr is not None and not self._reader.is_alive():
                self._proc.stderr.close()
            _live.discard(self)
            self._cleanup()
        return self._proc.poll()

    def _cleanup(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        return f"<{type(self).__name__} pid {self.pid} {state}: {' '.join(self.argv)}>"


class Wsat(_Process):
    """The wsat modem, started at once, on a TCP port (`transport="tcp"`,
    the default: every connection is a modem of its own) or a pty
    (`transport="pty"`: one modem, reached through a symlink in a temporary
    folder, or `pty_path`), with the control API (unless `control=False`).

    `args` go to wsat as they are: `Wsat("--wifi", "lab,secret123",
    "--no-stored-ap")`. Ports are picked by the OS, on 127.0.0.1.

    - `url`: what a host opens: `socket://127.0.0.1:PORT` (pyserial's
      `serial_for_url`) or the pty's path (`serial.Serial(path)`).
    - `control`: a `Control` client of the API (None with `control=False`).
    - `stop()`, or use it as a context manager.
    """

    def __init__(
        self,
        *args: str,
        transport: str = "tcp",
        control: bool = True,
        binary: Optional[str] = None,
        pty_path: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if transport not in ("tcp", "pty"):
            raise ValueError(f"transport is 'tcp' or 'pty', not {transport!r}")
        self.transport = transport
        self._tmpdir: Optional[str] = None
        argv = [find_binary(binary)]
        if transport == "tcp":
            argv += ["--tcp", "127.0.0.1:0"]
        else:
            if pty_path is None:
                self._tmpdir = tempfile.mkdtemp(prefix="wsat-")
                pty_path = os.path.join(self._tmpdir, "ttyWSAT")
            argv += ["--pty", str(pty_path)]
        if control:
            argv += ["--control", "127.0.0.1:0"]
        argv += [str(arg) for arg in args]
        wanted = [transport] + (["control"] if control else [])
        try:
            super().__init__(argv, wanted, env, start_timeout)
        except BaseException:
            self._cleanup()
            raise
        #: (host, port) of the TCP port; None on a pty.
        self.address: Optional[Tuple[str, int]] = None
        #: The pty's symlink, and the device it points to; None on TCP.
        self.path: Optional[str] = None
        self.device: Optional[str] = None
        if transport == "tcp":
            self.address = parse_address(self.announced("tcp")["addr"])
            self.url = "socket://%s:%d" % self.address
        else:
            pty = self.announced("pty")
            self.path, self.device = pty["path"], pty["device"]
            self.url = self.path
        self.control: Optional[Control] = None
        if control:
            self.control = Control(parse_address(self.announced("control")["addr"]))

    def _cleanup(self) -> None:
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


class Peer(_Process):
    """`wsat peer`: a scriptable WebSocket server (it echoes by default),
    started at once on 127.0.0.1 with its control API.

    - `url`: `ws://127.0.0.1:PORT`, for `AT+WSOPEN`.
    - `address`: (host, port) of the WebSocket server.
    - `control`: a `PeerControl` client (connections, send, ping, close, drop,
      stall, handshake, mode, log).

    Raises `PeerUnavailable` when the binary has no `peer` subcommand.
    """

    def __init__(
        self,
        *args: str,
        binary: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        argv = [find_binary(binary), "peer", "127.0.0.1:0", "--control", "127.0.0.1:0"]
        argv += [str(arg) for arg in args]
        super().__init__(argv, ["peer", "peer_control"], env, start_timeout)
        self.address: Tuple[str, int] = parse_address(self.announced("peer")["addr"])
        self.url = "ws://%s:%d" % self.address
        self.control = PeerControl(parse_address(self.announced("peer_control")["addr"]))

    def _startup_error(self, what: str) -> WsatError:
        text = self.stderr
        # clap's words for a subcommand it does not know.
        if re.search(r"unrecognized subcommand '?peer|unexpected argument '?peer", text):
            return PeerUnavailable(
                f"{self.argv[0]} has no `peer` subcommand (a wsat older than the "
                f"scriptable peer): {text.strip().splitlines()[0]}"
            )
        return super()._startup_error(what)

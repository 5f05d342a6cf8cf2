"""Helpers of the package's own tests: an AT host over pyserial, and pytest
run in a subprocess on a test file the test writes."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

#: How long a test waits for bytes it expects.
WAIT = 10.0
#: How long a pytest run in a subprocess may take.
SUBPROCESS_LIMIT = 120.0
#: This package's source, for subprocesses (the package may be installed, or
#: found only through PYTHONPATH).
SOURCE = Path(__file__).resolve().parents[1] / "src"


class Host:
    """A host program on a pyserial port: writes commands, reads answers
    byte for byte, every wait bounded."""

    def __init__(self, url):
        self.port = serial.serial_for_url(url, timeout=0.05)
        self.buf = b""

    def send(self, data):
        self.port.write(data)
        self.port.flush()

    def read_until(self, needle, wait=WAIT):
        deadline = time.monotonic() + wait
        while needle not in self.buf:
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {needle!r}; got {self.buf!r}")
            self.buf += self.port.read(self.port.in_waiting or 1)
        end = self.buf.index(needle) + len(needle)
        got, self.buf = self.buf[:end], self.buf[end:]
        return got

    def expect(self, exact, wait=WAIT):
        got = self.read_until(exact, wait)
        assert got == exact, f"expected {exact!r}, got {got!r}"

    def at(self, line, answer):
        self.send(line.encode() + b"\r\n")
        self.expect(answer)

    def quiet(self):
        """Echo off, and everything before its OK (the boot banner) read."""
        self.send(b"ATE0\r\n")
        self.read_until(b"\r\nOK\r\n")
        self.buf = b""

    def close(self):
        self.port.close()


@pytest.fixture
def host(wsat):
    """A quiet host on the `wsat` fixture's port."""
    h = Host(wsat.url)
    h.quiet()
    yield h
    h.close()


def run_pytest(folder, *args):
    """pytest on `folder` in a subprocess, with this package's plugin; the
    finished process (stdout and stderr together in `stdout`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "wsat_pytest.plugin", "-p", "no:cacheprovider", *args, str(folder)],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SUBPROCESS_LIMIT,
    )

"""An AT host on a serial port (pyserial's, or anything with `write`,
`flush`, `read` and `in_waiting`): writes commands, reads answers byte for
byte, every wait bounded."""

import time

#: How long a wait for expected bytes may take, by default.
WAIT = 10.0


class AtHost:
    def __init__(self, port, wait=WAIT):
        self.port = port
        self.wait = wait
        #: Bytes read and not yet taken by `read_until`.
        self.buf = b""

    def send(self, data):
        self.port.write(data)
        self.port.flush()

    def read_until(self, needle, wait=None):
        """Everything up to and with `needle`; fails after `wait` seconds."""
        deadline = time.monotonic() + (self.wait if wait is None else wait)
        while needle not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {needle!r}; got {self.buf!r}")
            self.buf += self.port.read(self.port.in_waiting or 1)
        end = self.buf.index(needle) + len(needle)
        got, self.buf = self.buf[:end], self.buf[end:]
        return got

    def expect(self, exact, wait=None):
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

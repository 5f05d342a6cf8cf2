#!/usr/bin/env python3
"""The Autobahn WebSocket conformance suite, run through wsat's AT port.

A host program of the kind the suite's testee client is, but speaking AT:
it starts `wsat --tcp 127.0.0.1:0`, and for every case of a running
`wstest -m fuzzingserver` opens the case's URL with AT+WSOPEN, reports
frames with AT+WSDATAFMT=0,1,63 (opcode, FIN and length before every
frame), puts each whole message back with AT+WSSEND (split at 16384 bytes
with continuation frames, as the command's length range asks), and ends the
case at +WS_CLOSED or +WS_DISCONNECTED. Then it asks the server to write its
reports. Only the Python standard library is used.

    scripts/autobahn_testee.py --wsat target/release/wsat --server 127.0.0.1:9001
"""
import argparse
import re
import socket
import subprocess
import sys
import threading
import time

WAIT = 60.0
MAX_SEND = 16384
HEADER = re.compile(rb"\+WS_DATA:0,(\d+),(\d+),(\d+),(\d+),(\d+),")
ENDED = ("+WS_CLOSED:0", "+WS_DISCONNECTED:0")


class Port:
    """The AT port of one modem, read as lines, prompts and frames."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pending = []  # events read while waiting for something else

    def fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("the modem closed the AT port")
        self.buf.extend(data)

    def read_event(self):
        """("line", text), ("prompt",) or ("frame", opcode, fin, payload)."""
        while True:
            while self.buf.startswith(b"\r\n"):
                del self.buf[:2]
            if self.buf.startswith(b">"):
                del self.buf[:1]
                return ("prompt",)
            if self.buf.startswith(b"+WS_DATA:"):
                m = HEADER.match(self.buf)
                if m is None:
                    if len(self.buf) > 80:
                        raise ValueError("bad +WS_DATA header %r" % bytes(self.buf[:80]))
                    self.fill()
                    continue
                opcode, fin, length = (int(g) for g in m.groups()[:3])
                del self.buf[: m.end()]
                while len(self.buf) < length + 2:
                    self.fill()
                payload = bytes(self.buf[:length])
                if self.buf[length : length + 2] != b"\r\n":
                    raise ValueError("no CR LF after a frame of %d bytes" % length)
                del self.buf[: length + 2]
                return ("frame", opcode, fin, payload)
            end = self.buf.find(b"\r\n")
            maybe_data = len(self.buf) < 9 and b"+WS_DATA:".startswith(bytes(self.buf))
            if end >= 0 and not maybe_data:
                line = bytes(self.buf[:end]).decode("latin-1")
                del self.buf[: end + 2]
                return ("line", line)
            self.fill()

    def event(self):
        return self.pending.pop(0) if self.pending else self.read_event()

    def wait_for(self, *lines):
        """Reads until one of `lines` (or ERROR); keeps what comes meanwhile."""
        while True:
            e = self.read_event()
            if e[0] == "line" and (e[1] in lines or e[1] == "ERROR"):
                return e[1]
            if e[0] == "frame" or (e[0] == "line" and e[1].startswith(ENDED)):
                self.pending.append(e)

    def command(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.wait_for("OK")

    def send(self, opcode, data, fin):
        self.sock.sendall(b"AT+WSSEND=0,%d,%d,10000,%d\r\n" % (len(data), opcode, fin))
        if data:
            e = None
            while e != ("prompt",):
                e = self.read_event()
                if e == ("line", "ERROR"):
                    return "ERROR"
                if e[0] == "frame" or (e[0] == "line" and e[1].startswith(ENDED)):
                    self.pending.append(e)
            self.sock.sendall(data)
        return self.wait_for("SEND OK")

    def echo(self, opcode, message):
        if not message:
            self.send(opcode, b"", 1)
        for at in range(0, len(message), MAX_SEND):
            last = at + MAX_SEND >= len(message)
            if self.send(opcode if at == 0 else 0, message[at : at + MAX_SEND], int(last)) != "SEND OK":
                return

    def run(self, url, echo, limit):
        """One case: returns how it ended and the messages received."""
        if self.command('AT+WSOPEN=0,"%s"' % url) != "OK":
            return "open failed", []
        messages, message, first = [], bytearray(), 1
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            e = self.event()
            if e[0] == "line" and e[1].startswith(ENDED):
                self.command("AT+WSCLOSE=0")
                return e[1], messages
            if e[0] != "frame":
                continue
            _, opcode, fin, payload = e
            if opcode != 0:
                first, message = opcode, bytearray()
            message += payload
            if fin:
                messages.append(bytes(message))
                if echo:
                    self.echo(first, bytes(message))
        self.command("AT+WSCLOSE=0")
        return "timed out", messages


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wsat", default="target/release/wsat")
    parser.add_argument("--server", default="127.0.0.1:9001", help="the fuzzingserver's host:port")
    parser.add_argument("--agent", default="wsat")
    parser.add_argument("--case-limit", type=float, default=300.0, help="seconds per case")
    args = parser.parse_args()

    modem = subprocess.Popen([args.wsat, "--tcp", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        while True:
            line = modem.stderr.readline()
            if not line:
                sys.exit("wsat exited before listening")
            if line.startswith("listening on "):
                break
        # Keep draining stderr so the modem never blocks on it.
        threading.Thread(target=lambda: [None for _ in modem.stderr], daemon=True).start()
        # A --tcp host finds its modem running: no `ready` to wait for.
        port = Port(int(line.rsplit(":", 1)[1]))
        for line in ("ATE0", "AT+WSCFG=0,7200,7200,16384", "AT+WSDATAFMT=0,1,63"):
            if port.command(line) != "OK":
                sys.exit("%s: ERROR" % line)
        base = "ws://%s" % args.server
        _, messages = port.run(base + "/getCaseCount", echo=False, limit=WAIT)
        count = int(messages[0])
        for case in range(1, count + 1):
            url = "%s/runCase?case=%d&agent=%s" % (base, case, args.agent)
            start = time.monotonic()
            ended, _ = port.run(url, echo=True, limit=args.case_limit)
            print("case %d/%d: %s (%.1f s)" % (case, count, ended, time.monotonic() - start), flush=True)
        port.run("%s/updateReports?agent=%s" % (base, args.agent), echo=False, limit=WAIT)
    finally:
        modem.kill()


if __name__ == "__main__":
    main()

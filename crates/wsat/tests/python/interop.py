"""pyserial as an ESP-AT host against wsat, with a websockets echo server.

    interop.py tcp HOST:PORT   serial_for_url("socket://HOST:PORT")
    interop.py pty PATH        serial.Serial(PATH)

Exits 0 after the documented session and a binary round trip; any mismatch or
wait longer than WAIT seconds fails with a message.
"""
import asyncio
import sys
import threading
import time

import serial
from websockets.asyncio.server import serve

WAIT = 10.0


def echo_server():
    """A websockets echo server on 127.0.0.1:0 in a thread; returns its URI."""
    ready = threading.Event()
    uri = []

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def main():
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            uri.append(f"ws://127.0.0.1:{port}")
            ready.set()
            await asyncio.Future()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    if not ready.wait(WAIT):
        sys.exit("echo server did not start")
    return uri[0]


class Host:
    def __init__(self, port):
        self.port = port
        self.buf = b""

    def send(self, data):
        self.port.write(data)
        self.port.flush()

    def read_until(self, needle):
        deadline = time.monotonic() + WAIT
        while needle not in self.buf:
            if time.monotonic() > deadline:
                sys.exit(f"timed out waiting for {needle!r}; got {self.buf!r}")
            self.buf += self.port.read(self.port.in_waiting or 1)
        end = self.buf.index(needle) + len(needle)
        got, self.buf = self.buf[:end], self.buf[end:]
        return got

    def expect(self, exact):
        got = self.read_until(exact)
        if got != exact:
            sys.exit(f"expected {exact!r}, got {got!r}")

    def at(self, line, answer):
        self.send(line.encode() + b"\r\n")
        self.expect(answer)


def main():
    kind, where = sys.argv[1], sys.argv[2]
    uri = echo_server()
    if kind == "tcp":
        port = serial.serial_for_url(f"socket://{where}", timeout=0.2)
    else:
        port = serial.Serial(where, 115200, timeout=0.2)
    host = Host(port)
    # pyserial discards pending input when it opens a port, so `ready` may or
    # may not be seen; the first OK puts host and modem in step.
    host.send(b"ATE0\r\n")
    host.read_until(b"\r\nOK\r\n")
    host.buf = b""
    host.at("AT", b"\r\nOK\r\n")

    host.at(f'AT+WSOPEN=0,"{uri}"', b"+WS_CONNECTED:0\r\n\r\nOK\r\n")
    host.at("AT+WSSEND=0,4", b"\r\nOK\r\n\r\n>")
    host.send(b"test")
    host.expect(b"\r\nSEND OK\r\n")
    host.expect(b"+WS_DATA:0,4,test\r\n")

    every_byte = bytes(range(256))
    host.at("AT+WSSEND=0,256,2", b"\r\nOK\r\n\r\n>")
    host.send(every_byte)
    host.expect(b"\r\nSEND OK\r\n")
    host.expect(b"+WS_DATA:0,256," + every_byte + b"\r\n")

    host.at("AT+WSOPEN?", f'+WSOPEN:0,2,"{uri}"\r\n\r\nOK\r\n'.encode())
    host.at("AT+WSCLOSE=0", b"\r\nOK\r\n")
    host.at("AT+WSOPEN?", b"\r\nOK\r\n")
    port.close()
    print(f"interop ok: pyserial {serial.VERSION} over {kind}")


if __name__ == "__main__":
    main()

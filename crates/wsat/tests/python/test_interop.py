"""pyserial as an ESP-AT host against wsat, with a websockets echo server:
`serial_for_url("socket://…")` against `--tcp` and `serial.Serial(PATH)`
against `--pty`, both started by the `wsat` fixtures (wsat_pytest).

Each test runs the documented session and a binary round trip; any mismatch
or a wait longer than WAIT seconds fails with a message.
"""
import asyncio
import threading

import pytest
import serial
from websockets.asyncio.server import serve

from wsat_pytest import AtHost

WAIT = 10.0


@pytest.fixture
def echo_uri():
    """A websockets echo server on 127.0.0.1:0 in a thread; its URI."""
    ready = threading.Event()
    uri = []
    stop = []

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def main():
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            uri.append(f"ws://127.0.0.1:{port}")
            done = asyncio.get_running_loop().create_future()
            stop.append((asyncio.get_running_loop(), done))
            ready.set()
            await done

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not ready.wait(WAIT):
        pytest.fail("echo server did not start")
    yield uri[0]
    loop, done = stop[0]
    loop.call_soon_threadsafe(done.set_result, None)
    thread.join(WAIT)


def session(port, uri):
    """The README's session and a binary round trip, on an open port (closed
    after)."""
    try:
        run_session(AtHost(port, wait=WAIT), uri)
    finally:
        port.close()


def run_session(host, uri):
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


def test_pyserial_socket_url_against_tcp(wsat, echo_uri):
    assert wsat.url.startswith("socket://127.0.0.1:")
    port = serial.serial_for_url(wsat.url, timeout=0.2)
    session(port, echo_uri)
    print(f"interop ok: pyserial {serial.VERSION} over tcp")


@pytest.mark.wsat_args(transport="pty")
def test_pyserial_serial_against_pty(wsat, echo_uri):
    session(serial.Serial(wsat.url, 115200, timeout=0.2), echo_uri)
    # A second host on the same port: the modem, like a powered board, is
    # still there after the first one closed it.
    session(serial.Serial(wsat.url, 115200, timeout=0.2), echo_uri)
    print(f"interop ok: pyserial {serial.VERSION} over pty, twice")

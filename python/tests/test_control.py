"""The control client end to end: each helper's fault, and what a pyserial
host then sees byte for byte; the API's errors as ControlError."""

import socket
import time

import pytest

from conftest import Host
from wsat_pytest import ControlError


def test_an_armed_busy_answer_then_a_reboot(wsat, host):
    wsat.control.answer("AT+GMR", "busy")
    host.at("AT+GMR", b"\r\nbusy p...\r\n")
    # Used up: the next one runs.
    host.send(b"AT+GMR\r\n")
    version = host.read_until(b"\r\nOK\r\n")
    assert version.startswith(b"AT version:"), version
    wsat.control.reboot()
    host.expect(b"\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n")
    # Echo is back on after the restart, as on a module.
    host.at("ATE0", b"ATE0\r\n\r\nOK\r\n")


def test_error_and_err_code_answers(wsat, host):
    wsat.control.answer("AT+CWMODE", "error")
    host.at("AT+CWMODE?", b"\r\nERROR\r\n")
    wsat.control.answer("AT", 0x01010001)
    host.at("AT+GMR", b"ERR CODE:0x01010001\r\n\r\nERROR\r\n")
    host.at("AT+CWMODE?", b"+CWMODE:1\r\n\r\nOK\r\n")


def test_reports_now_and_after_the_next_ok(wsat, host):
    wsat.control.report("+IPD,3:abc\r\n", when="after_ok")
    host.at("AT", b"\r\nOK\r\n+IPD,3:abc\r\n")
    wsat.control.report(b"+WS_DISCONNECTED:0\r\n")
    host.expect(b"+WS_DISCONNECTED:0\r\n")


def test_the_ap_lost_and_back(wsat, host):
    wsat.control.ap_lost()
    host.expect(b"WIFI DISCONNECT\r\n")
    host.at("AT+CWSTATE?", b'+CWSTATE:4,"wsat"\r\n\r\nOK\r\n')
    wsat.control.ap_back()
    host.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n")


def test_output_in_chunks(wsat, host):
    wsat.control.chunk_output(2, 20)
    started = time.monotonic()
    host.at("AT+CWMODE?", b"+CWMODE:1\r\n\r\nOK\r\n")
    # 18 bytes in 9 pieces, 20 ms apart.
    assert time.monotonic() - started >= 0.16
    wsat.control.chunk_output(0, 0)
    host.at("AT", b"\r\nOK\r\n")


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 for the modem's socket links."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        yield server


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        assert more, f"connection closed after {data!r}"
        data += more
    return data


def test_a_refused_connect_a_stall_a_slow_link_and_a_reset(wsat, host, listener):
    port = listener.getsockname()[1]
    start = f'AT+CIPSTART="TCP","127.0.0.1",{port}'
    wsat.control.fail_connect("refused", link="socket0")
    host.at(start, b"\r\nERROR\r\n")
    # Used up: the next one connects.
    host.at(start, b"CONNECT\r\n\r\nOK\r\n")
    peer, _ = listener.accept()
    peer.settimeout(10)
    with peer:
        assert wsat.control.modem()["links"][0]["link"] == "socket0"
        wsat.control.stall("socket0", 300)
        stalled = time.monotonic()
        peer.sendall(b"late")
        host.expect(b"\r\n+IPD,4:late\r\n")
        assert time.monotonic() - stalled >= 0.3
        # 200 ms late each way: the echo of what the host sends comes back
        # no sooner than 400 ms.
        wsat.control.shape("socket0", latency_ms=200)
        host.at("AT+CIPSEND=4", b"\r\nOK\r\n\r\n>")
        shaped = time.monotonic()
        host.send(b"ping")
        host.expect(b"\r\nRecv 4 bytes\r\n")
        assert recv_exactly(peer, 4) == b"ping"
        peer.sendall(b"pong")
        host.read_until(b"+IPD,4:pong\r\n")
        assert time.monotonic() - shaped >= 0.4
        wsat.control.shape("socket0")
        wsat.control.reset("socket0")
        host.expect(b"CLOSED\r\n")


@pytest.mark.wsat_args("-v")
def test_a_websocket_handshake_answered_with_a_status(wsat, host, listener):
    port = listener.getsockname()[1]
    wsat.control.fail_connect(503)
    host.at(f'AT+WSOPEN=0,"ws://127.0.0.1:{port}/"', b"+WS_DISCONNECTED:0\r\n\r\nERROR\r\n")
    assert wsat.wait_stderr(r"HTTP 503 \(fault\)"), wsat.stderr


def test_each_tcp_host_is_a_modem_of_its_own(wsat, host):
    first = wsat.control.wait_modem()
    second_host = Host(wsat.url)
    try:
        second_host.quiet()
        assert wsat.control.wait_modem(count=2) == first
        modems = wsat.control.modems()
        ports = {m["id"]: m["port"] for m in modems}
        local = host.port._socket.getsockname()
        assert ports[first] == "tcp %s:%d" % local
        second = next(m for m in ports if m != first)
        # A fault for the second modem only.
        wsat.control.answer("AT", "busy", modem=second)
        host.at("AT", b"\r\nOK\r\n")
        second_host.at("AT", b"\r\nbusy p...\r\n")
        assert wsat.control.modem(second)["id"] == second
    finally:
        second_host.close()


def test_api_errors_carry_the_api_message(wsat, host):
    with pytest.raises(ControlError) as err:
        wsat.control.modem(99)
    assert err.value.status == 404
    assert err.value.message == "no modem 99"
    with pytest.raises(ControlError, match="has no connection") as err:
        wsat.control.reset("ws0")
    assert err.value.status == 409
    with pytest.raises(ControlError, match="no link") as err:
        wsat.control.reset("ws7")
    assert err.value.status == 400
    with pytest.raises(ControlError, match="unknown variant") as err:
        wsat.control.fault("nope")
    assert err.value.status == 400
    # The modem is unharmed.
    host.at("AT", b"\r\nOK\r\n")
    wsat.stop()
    with pytest.raises(ControlError, match="no answer") as err:
        wsat.control.modems()
    assert err.value.status is None


@pytest.mark.wsat_args(transport="pty")
def test_the_pty_modem_is_there_before_any_host(wsat):
    (modem,) = wsat.control.modems()
    assert modem["port"] == f"pty {wsat.path}"
    wsat.control.answer("AT+GMR", "busy")
    host = Host(wsat.url)
    try:
        host.quiet()
        host.at("AT+GMR", b"\r\nbusy p...\r\n")
    finally:
        host.close()

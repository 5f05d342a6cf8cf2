"""The scriptable peer (`wsat peer`) through its fixture and client, with a
modem's host on the other side. Skipped while the binary has no `peer`
subcommand."""

import pytest

from conftest import Host
from wsat_pytest import ControlError, Peer, PeerUnavailable


def test_the_peer_starts_or_says_it_is_missing():
    """Either way, never another error: the fixture's skip depends on it."""
    try:
        peer = Peer()
    except PeerUnavailable as err:
        assert "no `peer` subcommand" in str(err)
        return
    with peer:
        assert peer.url.startswith("ws://127.0.0.1:")
        assert peer.control.connections() == []


@pytest.fixture
def host(wsat_peer, wsat_factory):
    """A quiet host on a modem of its own (no control API: these tests drive
    the peer), started after the peer, so a missing peer skips first."""
    h = Host(wsat_factory(control=False).url)
    h.quiet()
    yield h
    h.close()


@pytest.fixture
def link(wsat_peer, host):
    """The host's link 0 open to the peer; the peer's connection id."""
    host.at(f'AT+WSOPEN=0,"{wsat_peer.url}"', b"+WS_CONNECTED:0\r\n\r\nOK\r\n")
    return wsat_peer.control.wait_connection()


def test_an_echo_and_messages_pushed_by_the_peer(wsat_peer, host, link):
    host.at("AT+WSSEND=0,4", b"\r\nOK\r\n\r\n>")
    host.send(b"test")
    host.expect(b"\r\nSEND OK\r\n")
    host.expect(b"+WS_DATA:0,4,test\r\n")
    wsat_peer.control.send(link, "hello")
    host.expect(b"+WS_DATA:0,5,hello\r\n")
    wsat_peer.control.send(link, b"\x00\xff")
    host.expect(b"+WS_DATA:0,2,\x00\xff\r\n")
    # Fields the client does not name go to the peer as they are.
    assert wsat_peer.control.send(link, "hello world", fragments=3)["fragments"] == 3
    host.expect(b"+WS_DATA:0,4,hell\r\n+WS_DATA:0,4,o wo\r\n+WS_DATA:0,3,rld\r\n")
    wsat_peer.control.ping(link, payload="hi")
    connection = wsat_peer.control.connection(link)
    assert connection["state"] == "open"
    assert wsat_peer.control.log()


def test_no_echo_and_a_close_from_the_peer(wsat_peer, host, link):
    wsat_peer.control.mode(echo=False)
    wsat_peer.control.close(link, code=4000, reason="bye")
    host.expect(b"+WS_CLOSED:0\r\n")
    with pytest.raises(ControlError) as err:
        wsat_peer.control.send(link, "late")
    assert err.value.status == 409


def test_a_dropped_connection_and_a_refused_handshake(wsat_peer, host, link):
    wsat_peer.control.drop(link, how="rst")
    host.expect(b"+WS_DISCONNECTED:0\r\n")
    wsat_peer.control.handshake(mode="status", status=503)
    host.at("AT+WSCLOSE=0", b"\r\nOK\r\n")
    host.at(f'AT+WSOPEN=1,"{wsat_peer.url}"', b"+WS_DISCONNECTED:1\r\n\r\nERROR\r\n")

"""The fixtures and the process: ports, arguments, pty mode, stopping,
finding the binary, failing to start, and wsat's stderr on a failed test."""

import os
import textwrap

import pytest

from conftest import Host, run_pytest
from wsat_pytest import Wsat, WsatError, WsatNotFound, find_binary, parse_startup_line


def test_the_default_is_tcp_with_the_control_api(wsat):
    assert wsat.transport == "tcp"
    host, port = wsat.address
    assert host == "127.0.0.1" and port > 0
    assert wsat.url == f"socket://127.0.0.1:{port}"
    assert wsat.control is not None and wsat.control.url.startswith("http://127.0.0.1:")
    assert wsat.running
    assert wsat.argv[1:5] == ["--tcp", "127.0.0.1:0", "--control", "127.0.0.1:0"]
    assert wsat.control.modems() == []


@pytest.mark.wsat_args("--firmware", "v4.1", "--no-stored-ap")
def test_marker_arguments_reach_the_binary(wsat):
    host = Host(wsat.url)
    try:
        host.quiet()
        modem = wsat.control.modem()
        assert modem["firmware"] == "v4.1"
        assert modem["station"] is None
        host.send(b"AT+GMR\r\n")
        assert b"v4.1" in host.read_until(b"\r\nOK\r\n")
    finally:
        host.close()


def test_the_factory_starts_several_and_stops_them(wsat_factory):
    one = wsat_factory()
    two = wsat_factory("--firmware", "v3.2", control=False)
    assert one.address != two.address
    assert two.control is None
    assert "--control" not in two.argv
    assert two.argv[-2:] == ["--firmware", "v3.2"]


def test_pty_mode_and_a_clean_stop(wsat_factory):
    modem = wsat_factory(transport="pty")
    assert modem.url == modem.path
    assert os.path.islink(modem.path)
    assert os.readlink(modem.path) == modem.device
    assert modem.device.startswith("/dev/pts/")
    host = Host(modem.url)
    try:
        host.quiet()
        host.at("AT", b"\r\nOK\r\n")
    finally:
        host.close()
    folder = os.path.dirname(modem.path)
    # SIGTERM: wsat removes its symlink and exits 0; the folder goes too.
    assert modem.stop() == 0
    assert not modem.running
    assert not os.path.lexists(modem.path)
    assert not os.path.exists(folder)
    assert modem.stop() == 0


def test_a_pty_at_a_path_of_ones_own(wsat_factory, tmp_path):
    path = tmp_path / "ttyESP"
    modem = wsat_factory(transport="pty", pty_path=str(path))
    assert modem.url == str(path)
    assert path.is_symlink()
    modem.stop()
    assert not os.path.lexists(path)


def test_as_a_context_manager():
    with Wsat() as modem:
        assert modem.running
        pid = modem.pid
    assert not modem.running
    assert modem.returncode == 0, pid


def test_bad_arguments_raise_with_what_wsat_said():
    with pytest.raises(WsatError, match="not a release wsat knows") as err:
        Wsat("--firmware", "v9")
    assert "exited with status 2" in str(err.value)
    with pytest.raises(ValueError, match="transport"):
        Wsat(transport="serial")


def test_finding_the_binary(monkeypatch, tmp_path):
    real = find_binary()
    assert os.access(real, os.X_OK)
    monkeypatch.setenv("WSAT_BIN", str(tmp_path / "nothing"))
    with pytest.raises(WsatNotFound, match="WSAT_BIN"):
        find_binary()
    with pytest.raises(WsatNotFound):
        Wsat()
    # Without WSAT_BIN: wsat on PATH.
    monkeypatch.delenv("WSAT_BIN")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "wsat").symlink_to(real)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_binary() == str(tmp_path / "bin" / "wsat")
    # An explicit binary wins over both.
    assert find_binary(real) == real


@pytest.mark.parametrize(
    "line, parsed",
    [
        ("listening on 127.0.0.1:2323", ("tcp", {"addr": "127.0.0.1:2323"})),
        ("pty /dev/pts/3 at /tmp/x/ttyWSAT", ("pty", {"device": "/dev/pts/3", "path": "/tmp/x/ttyWSAT"})),
        (
            "control API on http://127.0.0.1:7700 (only this machine can reach it)",
            ("control", {"addr": "127.0.0.1:7700"}),
        ),
        ("peer listening on 127.0.0.1:8766", ("peer", {"addr": "127.0.0.1:8766"})),
        ("peer control on 127.0.0.1:8767", ("peer_control", {"addr": "127.0.0.1:8767"})),
        ("2026-12-01T12:00:00Z  INFO wsat: modem started", None),
    ],
)
def test_startup_lines(line, parsed):
    assert parse_startup_line(line) == parsed


def test_a_failed_test_shows_wsats_stderr(tmp_path):
    (tmp_path / "test_fails.py").write_text(
        textwrap.dedent(
            """
            @__import__("pytest").mark.wsat_args("-v")
            def test_fails(wsat):
                assert wsat.control.modems() == ["something"]

            def test_passes(wsat):
                pass
            """
        )
    )
    run = run_pytest(tmp_path, "-q")
    assert run.returncode == 1, run.stdout
    assert "1 failed, 1 passed" in run.stdout, run.stdout
    assert "Captured stderr teardown" in run.stdout, run.stdout
    assert "--tcp 127.0.0.1:0 --control 127.0.0.1:0 -v (pid" in run.stdout, run.stdout
    assert "listening on 127.0.0.1:" in run.stdout, run.stdout
    # Only for the failed test.
    assert run.stdout.count("Captured stderr teardown") == 1, run.stdout

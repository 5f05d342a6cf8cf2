"""The pytest plugin: fixtures that start wsat for a test and stop it after.

- `wsat`: a `Wsat` on TCP with the control API; `@pytest.mark.wsat_args(...)`
  gives its arguments and options, e.g.
  `@pytest.mark.wsat_args("--no-stored-ap", transport="pty")`.
- `wsat_factory`: `wsat_factory(*args, **options)` starts another (any
  number; all are stopped after the test).
- `wsat_peer`: a `Peer` (`wsat peer`); the test is skipped if the binary
  has no `peer` subcommand.

The binary: `--wsat-bin PATH`, else `$WSAT_BIN`, else `wsat` on PATH, else a
cargo build (see `find_binary`). When a test fails, what wsat printed on
stderr is shown with it (start wsat with `-v` for its log).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterator, List

import pytest

from .process import Peer, PeerUnavailable, Wsat, _Process

_failed = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--wsat-bin",
        metavar="PATH",
        default=None,
        help="the wsat binary the wsat fixtures run (default: $WSAT_BIN, wsat on PATH, a cargo build)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wsat_args(*args, **options): arguments for the wsat fixture's binary "
        "(e.g. '--no-stored-ap') and Wsat options (transport='pty', control=False)",
    )
    binary = config.getoption("--wsat-bin")
    if binary:
        os.environ["WSAT_BIN"] = os.path.abspath(binary)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item.stash[_failed] = True


def _show_stderr(request: pytest.FixtureRequest, procs: List[_Process]) -> None:
    """After a failed test, wsat's stderr goes to the test's captured
    output (pytest shows it under "Captured stderr teardown")."""
    if not request.node.stash.get(_failed, False):
        return
    for proc in procs:
        text = proc.stderr.strip()
        sys.stderr.write(f"--- {' '.join(proc.argv)} (pid {proc.pid}) stderr:\n{text or '(nothing)'}\n")


@pytest.fixture
def wsat_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Wsat]]:
    """`wsat_factory(*args, **options)`: a started `Wsat(*args, **options)`,
    stopped after the test."""
    started: List[_Process] = []

    def start(*args: str, **options) -> Wsat:
        modem = Wsat(*args, **options)
        started.append(modem)
        return modem

    yield start
    for proc in reversed(started):
        proc.stop()
    _show_stderr(request, started)


@pytest.fixture
def wsat(request: pytest.FixtureRequest, wsat_factory: Callable[..., Wsat]) -> Wsat:
    """A started `Wsat`: `--tcp` on 127.0.0.1 with the control API, or as
    the closest `@pytest.mark.wsat_args(*args, **options)` says. `wsat.url`
    is what pyserial opens, `wsat.control` the control client."""
    marker = request.node.get_closest_marker("wsat_args")
    args, options = (marker.args, marker.kwargs) if marker else ((), {})
    return wsat_factory(*args, **options)


@pytest.fixture
def wsat_peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """A started `Peer` (`wsat peer` on 127.0.0.1): `wsat_peer.url` is its
    `ws://` address, `wsat_peer.control` its control client. Skips the test
    if the binary has no `peer` subcommand."""
    try:
        peer = Peer()
    except PeerUnavailable as err:
        pytest.skip(str(err))
    yield peer
    peer.stop()
    _show_stderr(request, [peer])

"""Helpers of the package's own tests: an AT host over pyserial, and pytest
run in a subprocess on a test file the test writes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from wsat_pytest import AtHost

#: How long a test waits for bytes it expects.
WAIT = 10.0
#: How long a pytest run in a subprocess may take.
SUBPROCESS_LIMIT = 120.0
#: This package's source, for subprocesses (the package may be installed, or
#: found only through PYTHONPATH).
SOURCE = Path(__file__).resolve().parents[1] / "src"


def Host(url):
    """An AT host on a pyserial port opened at `url`."""
    return AtHost(serial.serial_for_url(url, timeout=0.05), wait=WAIT)


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

#!/usr/bin/env bash
# Runs every test of the workspace, the slow and the Python-driven ones too.
# Python tests use a virtual environment in .venv with pytest, pyserial,
# websockets, Adafruit's ESP-AT driver and the fixture package of python/,
# made here when missing; WSAT_PYTHON tells the tests which interpreter to run.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
python="$venv/bin/python"
if [ ! -x "$python" ]; then
    python3 -m venv "$venv"
fi
pip=("$python" -m pip install --quiet --disable-pip-version-check)
if ! "$python" -c 'import pytest, serial, websockets' 2>/dev/null; then
    "${pip[@]}" pytest pyserial websockets
fi
# The pytest fixtures (python/, wsat-pytest), installed editable: .venv runs
# this checkout's source, so it is never a stale copy (the tests themselves
# also put python/src first on PYTHONPATH). Installed again only when it is
# missing, from elsewhere, or lacks its pytest11 entry point.
if ! PYTHONPATH= "$python" -c 'import importlib.metadata as m, pathlib, wsat_pytest
assert pathlib.Path(wsat_pytest.__file__).resolve().is_relative_to(pathlib.Path("python/src").resolve())
assert "wsat_pytest.plugin" in [ep.name for ep in m.distribution("wsat-pytest").entry_points]' 2>/dev/null; then
    "${pip[@]}" --editable ./python
fi
# Adafruit_CircuitPython_ESP_ATcontrol, pinned: the test pins its 0.11.7 bugs.
# Without its dependencies: they are Blinka (CircuitPython's hardware API for
# Linux boards: GPIO, USB and FTDI back ends) and the HTTP layers on top of
# the driver, none of which the module itself imports. What it imports from
# CircuitPython (digitalio, busio) comes from the stubs the test puts first
# on the path.
adafruit=adafruit-circuitpython-esp-atcontrol==0.11.7
stubs=crates/wsat/tests/python/stubs
if ! PYTHONPATH="$stubs" "$python" -c 'import adafruit_espatcontrol.adafruit_espatcontrol as m
assert m.__version__ == "0.11.7", m.__version__' 2>/dev/null; then
    "${pip[@]}" --no-deps "$adafruit"
fi
WSAT_PYTHON="$(pwd)/$python"
export WSAT_PYTHON

# cargo test closes on its last crate's doc tests (often 0 of them): end with
# one line that counts every test of the run.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast -- --include-ignored "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"

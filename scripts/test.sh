#!/usr/bin/env bash
# Runs every test of the workspace, the slow and the Python-driven ones too.
# Python tests use a virtual environment in .venv with pyserial, websockets and
# Adafruit's ESP-AT driver, made here when missing; WSAT_PYTHON tells the tests
# which interpreter to run.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
python="$venv/bin/python"
if [ ! -x "$python" ]; then
    python3 -m venv "$venv"
fi
if ! "$python" -c 'import serial, websockets' 2>/dev/null; then
    "$python" -m pip install --quiet pyserial websockets
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
    "$python" -m pip install --quiet --no-deps "$adafruit"
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

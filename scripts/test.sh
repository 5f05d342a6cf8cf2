#!/usr/bin/env bash
# Runs every test of the workspace, the slow and the Python-driven ones too.
# Python tests use a virtual environment in .venv with pyserial and websockets,
# made here when missing; WSAT_PYTHON tells the tests which interpreter to run.
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
WSAT_PYTHON="$(pwd)/$python"
export WSAT_PYTHON

cargo test --workspace --no-fail-fast -- --include-ignored "$@"

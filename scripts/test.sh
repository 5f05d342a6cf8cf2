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

# cargo test closes on its last crate's doc tests (often 0 of them): end with
# one line that counts every test of the run.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast -- --include-ignored "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"

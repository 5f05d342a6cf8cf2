#!/usr/bin/env bash
# The Autobahn WebSocket conformance suite through wsat's AT port: starts
# `wstest -m fuzzingserver` ($WSTEST, e.g. from `pip2 install
# autobahntestsuite` under Python 2.7, or else the crossbario/autobahn-testsuite
# Docker image), runs scripts/autobahn_testee.py against the release modem,
# prints how each case behaved, and fails if any case FAILED. Cases 12 and 13
# (permessage-deflate) are left out: ESP-AT negotiates no extension.
# Reports: target/autobahn/reports/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/autobahn
mkdir -p "$out"
cat > "$out/fuzzingserver.json" <<'JSON'
{"url": "ws://127.0.0.1:9001", "outdir": "./reports", "cases": ["*"],
 "exclude-cases": ["12.*", "13.*"], "exclude-agent-cases": {}}
JSON
cargo build --release -p wsat
if [ -n "${WSTEST:-}" ]; then
    (cd "$out" && exec "$WSTEST" -m fuzzingserver -s fuzzingserver.json) >"$out/server.log" 2>&1 &
    server=$!
    trap 'kill "$server" 2>/dev/null || true' EXIT
elif docker info >/dev/null 2>&1; then
    docker run --rm --name wsat-autobahn --network host -v "$PWD/$out:/work" -w /work \
        crossbario/autobahn-testsuite wstest -m fuzzingserver -s fuzzingserver.json \
        >"$out/server.log" 2>&1 &
    trap 'docker stop wsat-autobahn >/dev/null 2>&1 || true' EXIT
else
    echo "autobahn.sh: set WSTEST to a wstest (pip2 install autobahntestsuite), or run Docker" >&2
    exit 2
fi
# The server takes a few seconds to start; give it up to a minute.
python3 - <<'PY'
import socket, sys, time
deadline = time.monotonic() + 60
while True:
    try:
        socket.create_connection(("127.0.0.1", 9001), 1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("the fuzzingserver did not listen on 127.0.0.1:9001 (see target/autobahn/server.log)")
        time.sleep(0.2)
PY
python3 scripts/autobahn_testee.py --wsat target/release/wsat --server 127.0.0.1:9001
python3 - "$out/reports/index.json" <<'PY'
import collections, json, sys
cases = json.load(open(sys.argv[1]))["wsat"]
key = lambda case: [int(part) for part in case.split(".")]
seen = collections.Counter()
for case in sorted(cases, key=key):
    result = cases[case]
    behaviour = (result["behavior"], result["behaviorClose"])
    seen[behaviour] += 1
    if behaviour != ("OK", "OK"):
        print("case %s: %s, close %s" % (case, *behaviour))
for behaviour, n in seen.most_common():
    print("%d cases: %s, close %s" % (n, *behaviour))
sys.exit(1 if any("FAILED" in b for b in seen) else 0)
PY

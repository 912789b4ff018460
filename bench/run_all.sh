#!/bin/sh
# Every benchmark at its default size, on SQLite and PostgreSQL, one after the other
# (they share the machine's 2 cores: never run two at once). Output goes to
# ${OUT:-/tmp/ccm-bench-results}/NAME.txt. About 30 minutes. For profiles, set PY_SPY
# to a py-spy binary (e.g. pip install --target /tmp/py-spy py-spy; PY_SPY=/tmp/py-spy/bin/py-spy).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ccm-bench-results}
mkdir -p "$OUT"
PY=.venv/bin/python
run() {
    name=$1; shift
    echo "== $name: $*"
    "$PY" "$@" > "$OUT/$name.txt" 2>&1
    echo "   exit $? -> $OUT/$name.txt"
}
run ingest          bench/ingest.py --postgres --smtp-processes 2 --profile
run ingest-cpu      bench/ingest_cpu.py
run ingest-mix      bench/ingest.py --postgres --size 10k --mix 0.05
run portal-sqlite   bench/portal.py --profile --explain
run portal-pg       bench/portal.py --postgres --profile --explain
run expiry-sqlite   bench/expiry.py --profile
run expiry-pg       bench/expiry.py --postgres
run expiry-full     bench/expiry.py --full
run memory-sqlite   bench/memory.py --breakdown
run memory-pg       bench/memory.py --postgres
run crash-sqlite    bench/crash.py
run crash-pg        bench/crash.py --postgres
run faults-sqlite   bench/faults.py
run faults-pg       bench/faults.py --postgres
run signin-timing   bench/signin_timing.py
run race-pg         bench/first_contact_race.py --postgres --rounds 20 --connections 8

#!/usr/bin/env bash
# The benchmark of issue 13: mrmat-api against a bare actix-web floor, interleaved rounds,
# prints the table and writes docs/BENCHMARKS.md. The work is in bench/bench.py (Python
# standard library only); see bench/README.md. `bench/run.sh --help` lists the options.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v python3 >/dev/null || { echo "[bench] error: python3 is required" >&2; exit 1; }
exec python3 bench.py "$@"

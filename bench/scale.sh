#!/usr/bin/env bash
# How cost grows (issue 13): list latency with many rows and its query plans, the
# introspection cache with 100k tokens, one worker against two. Writes the last part of
# docs/BENCHMARKS.md. The work is in bench/scale.py; see bench/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v python3 >/dev/null || { echo "[bench] error: python3 is required" >&2; exit 1; }
exec python3 scale.py "$@"

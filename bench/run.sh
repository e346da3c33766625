#!/usr/bin/env bash
# Performance benchmark of the mrmat-api release binary: cold start, idle RSS, binary
# size, and wrk throughput/latency of greeting v1 (open) and v3 (bearer token, cached
# introspection) against the test identity provider. See bench/README.md.
#
# Loopback only. Every process it starts is stopped on exit (trap EXIT, bounded).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
IDP_DIR=$ROOT/tests/idp

# Knobs (environment).
COLD_RUNS=${BENCH_COLD_RUNS:-10}          # cold starts to time
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-5}     # idle time before the second RSS reading
WRK_THREADS=${BENCH_WRK_THREADS:-2}
WRK_CONNECTIONS=${BENCH_WRK_CONNECTIONS:-32}
WRK_DURATION=${BENCH_WRK_DURATION:-10}    # seconds per wrk run
SERVER_WORKERS=${BENCH_WORKERS:-2}        # --workers of the server under load
SERVER_RUST_LOG=${BENCH_RUST_LOG:-}       # empty: the server's default (info: one access-log line per request)
START_TIMEOUT=${BENCH_START_TIMEOUT:-20}  # seconds to wait for a server's first /healthz/ 200
STRICT=${BENCH_STRICT:-0}                 # 1: exit 3 when a target is missed

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] error: %s\n' "$*" >&2
    exit 1
}

# The server must see only what we pass: no inherited MRMAT_API_*, PORT or RUST_LOG.
for v in $(compgen -e); do
    case $v in MRMAT_API_* | PORT | RUST_LOG) unset "$v" ;; esac
done

for tool in curl node cargo awk; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mrmat-bench.XXXXXX")
PIDS=()   # every background process we started and have not stopped yet
IDP_FD=   # write end of the identity provider's stdin (it exits when this closes)
mkfifo "$TMP/nap"
exec {NAP_FD}<>"$TMP/nap" # for nap(): nobody ever writes to it

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# stop_pid PID [GRACE_SECONDS]: SIGTERM, wait up to GRACE (default 5 s), then SIGKILL.
stop_pid() {
    local pid=$1 grace=${2:-5} i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        nap 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "process $pid ignored SIGTERM for ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    if [[ -n $IDP_FD ]]; then
        exec {IDP_FD}>&- || true
        IDP_FD=
    fi
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do stop_pid "$pid" 5; done
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn OUT_FILE CMD...: runs CMD in the background (stdout+stderr to OUT_FILE), without
# the identity provider's stdin pipe, and records its pid in SPAWNED (also in PIDS).
spawn() {
    local out=$1
    shift
    (
        if [[ -n $IDP_FD ]]; then exec {IDP_FD}>&-; fi
        exec {NAP_FD}>&-
        exec "$@"
    ) >"$out" 2>&1 </dev/null &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }

# A free loopback port (the kernel's choice; released at once).
free_port() {
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})'
}

# json_field NAME < JSON: prints the top-level member NAME; fails if absent.
json_field() {
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v;try{v=JSON.parse(s)[process.argv[1]]}catch(e){process.exit(1)}if(v===undefined||v===null)process.exit(1);process.stdout.write(String(v))})' "$1"
}

# The sampling below uses builtins only (no forks), so that it hardly shows in the CPU figures.
# proc_field PID FIELD: VmRSS / VmHWM (KiB) / Threads from /proc/PID/status.
proc_field() {
    local k v _
    while read -r k v _; do
        if [[ $k == "$2:" ]]; then
            echo "$v"
            return 0
        fi
    done <"/proc/$1/status"
    return 1
}
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

# CPU accounting, in clock ticks: all CPUs busy (/proc/stat), and one process (utime+stime).
cpu_busy_ticks() {
    local cpu user nice system idle iowait irq softirq steal _
    read -r cpu user nice system idle iowait irq softirq steal _ </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}
# proc_ticks PID: utime+stime (fields 14, 15 of /proc/PID/stat), 0 once it is gone.
proc_ticks() {
    local line f
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || {
        echo 0
        return
    }
    read -ra f <<<"${line##*) }"
    echo $((f[11] + f[12]))
}
# nap SECONDS: sleep without a fork (a read that times out on a pipe nobody writes to).
nap() { read -r -t "$1" -u "$NAP_FD" _ || true; }

# wait_healthy PORT PID TIMEOUT_S: polls /healthz/ in a tight loop (no sleeps) until a 200.
wait_healthy() {
    local url="http://127.0.0.1:$1/healthz/" pid=$2 limit=$((SECONDS + $3)) code
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == 200 ]] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < limit)) || return 1
    done
}

# start_server NAME PORT ARGS...: the release binary on 127.0.0.1:PORT with a fresh instance
# directory $TMP/NAME; waits for /healthz/ 200. Sets SERVER_PID and START_US (µs to the 200).
start_server() {
    local name=$1 port=$2 t0 t1
    shift 2
    mkdir -p "$TMP/$name"
    local args=(--host 127.0.0.1 --port "$port" --instance-path "$TMP/$name"
        --db "sqlite://$TMP/$name/mrmat-api.sqlite" "$@")
    t0=$(now_us)
    if [[ -n $SERVER_RUST_LOG ]]; then
        spawn "$TMP/$name.log" env RUST_LOG="$SERVER_RUST_LOG" "$BIN" "${args[@]}"
    else
        spawn "$TMP/$name.log" "$BIN" "${args[@]}"
    fi
    SERVER_PID=$SPAWNED
    if ! wait_healthy "$port" "$SERVER_PID" "$START_TIMEOUT"; then
        sed 's/^/    /' "$TMP/$name.log" >&2 || true
        die "server '$name' gave no /healthz/ 200 within ${START_TIMEOUT}s"
    fi
    t1=$(now_us)
    START_US=$((t1 - t0))
}

# --- 1. wrk and the release build --------------------------------------------------------

if ! command -v wrk >/dev/null; then
    SUDO=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "wrk is missing and installing it needs root (or sudo)"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { "${SUDO[@]}" apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 wrk >&2; }
    log "installing wrk with apt-get"
    if ! apt_install; then
        log "apt-get install failed: apt-get update, then again"
        "${SUDO[@]}" apt-get update -q -o DPkg::Lock::Timeout=120 >&2
        apt_install
    fi
fi
command -v wrk >/dev/null || die "wrk is required"

log "cargo build --release -p mrmat-api --locked (may wait for the cargo lock)"
BIN_SRC=$(cd "$ROOT" && cargo build --release -p mrmat-api --locked --message-format=json-render-diagnostics |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let exe="";for(const l of s.split("\n")){if(!l.startsWith("{"))continue;const m=JSON.parse(l);if(m.reason==="compiler-artifact"&&m.target&&m.target.name==="mrmat-api"&&m.target.kind.includes("bin")&&m.executable)exe=m.executable}if(!exe)process.exit(1);process.stdout.write(exe)})') ||
    die "the release build failed"
# Run a private copy: a rebuild in the shared target dir cannot swap it mid-benchmark.
BIN=$TMP/mrmat-api
cp "$BIN_SRC" "$BIN"
BIN_BYTES=$(stat -c %s "$BIN")
log "binary: $BIN_SRC ($(mib $((BIN_BYTES / 1024))) MiB)"
cd "$TMP" # no .env in the working directory of the servers
CLK_TCK=$(getconf CLK_TCK)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the machine skews every figure

# --- 2. cold start, idle RSS ------------------------------------------------------------

log "cold start: $COLD_RUNS runs (fresh instance dir and SQLite each, no OIDC)"
COLD=()
for ((i = 1; i <= COLD_RUNS; i++)); do
    start_server "cold-$i" "$(free_port)"
    COLD+=("$START_US")
    log "  run $i: $(awk -v u="$START_US" 'BEGIN{printf "%.1f", u/1000}') ms"
    stop_pid "$SERVER_PID"
done
read -r COLD_MIN COLD_MED < <(printf '%s\n' "${COLD[@]}" | sort -n |
    awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f\n", a[1]/1000, m/1000}')

log "idle RSS: start, then ${IDLE_SECONDS}s idle"
start_server idle "$(free_port)"
RSS_START=$(proc_field "$SERVER_PID" VmRSS)
THREADS_IDLE=$(proc_field "$SERVER_PID" Threads)
nap "$IDLE_SECONDS"
RSS_IDLE=$(proc_field "$SERVER_PID" VmRSS)
stop_pid "$SERVER_PID"

# --- 3. identity provider, server with OIDC, wrk -----------------------------------------

if [[ ! -e $IDP_DIR/node_modules/.package-lock.json ||
    $IDP_DIR/package-lock.json -nt $IDP_DIR/node_modules/.package-lock.json ]]; then
    log "npm ci in tests/idp"
    # The same lock file as the test harness (tests/src/idp.rs), so we never install concurrently.
    (cd "$IDP_DIR" && flock .npm-ci.lock npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

log "starting the test identity provider"
mkfifo "$TMP/idp.stdin"
(exec {NAP_FD}>&- && cd "$IDP_DIR" && IDP_PORT=0 exec node server.mjs) <"$TMP/idp.stdin" >"$TMP/idp.out" 2>"$TMP/idp.err" &
IDP_PID=$!
PIDS+=("$IDP_PID")
exec {IDP_FD}<>"$TMP/idp.stdin" # read-write: never blocks; only we hold the write end
limit=$((SECONDS + 30))
until [[ -s $TMP/idp.out ]] && grep -q '"issuer"' "$TMP/idp.out"; do
    kill -0 "$IDP_PID" 2>/dev/null || { cat "$TMP/idp.err" >&2; die "the identity provider exited"; }
    ((SECONDS < limit)) || die "the identity provider did not start within 30s"
    nap 0.05
done
ISSUER=$(head -n1 "$TMP/idp.out" | json_field issuer)
log "identity provider: $ISSUER"

TOKEN=$(curl -sS --fail --max-time 10 -u mrmat-api-test-rw:mrmat-api-test-rw-secret \
    -d grant_type=client_credentials "$ISSUER/token" | json_field access_token) ||
    die "no token from $ISSUER/token"

PORT=$(free_port)
log "starting the server with OIDC (--workers $SERVER_WORKERS) on 127.0.0.1:$PORT"
start_server load "$PORT" --workers "$SERVER_WORKERS" \
    --oidc-issuer "$ISSUER" --oidc-client-id mrmat-api --oidc-client-secret mrmat-api-secret
LOAD_PID=$SERVER_PID
BASE="http://127.0.0.1:$PORT"

curl -sS --fail --max-time 10 -X POST "$ISSUER/__stats/reset" >/dev/null
WARM=$(curl -sS --max-time 10 -w ' %{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/api/greeting/v3/")
[[ $WARM == *' 200' ]] || die "warm-up v3 request failed: $WARM"
log "warm-up v3: ${WARM% 200}"

# read_rss_ticks WRK_PID: sets RSS_NOW (server VmRSS, KiB) and TICKS_NOW (wrk CPU ticks)
# without forking.
read_rss_ticks() {
    local k v _ line f
    RSS_NOW=0
    TICKS_NOW=0
    while read -r k v _; do
        if [[ $k == VmRSS: ]]; then
            RSS_NOW=$v
            break
        fi
    done <"/proc/$LOAD_PID/status"
    if { read -r line <"/proc/$1/stat"; } 2>/dev/null; then
        read -ra f <<<"${line##*) }"
        TICKS_NOW=$((f[11] + f[12]))
    fi
}

# run_wrk NAME PATH [WRK ARGS...]: wrk against the server, sampling its RSS meanwhile.
# Leaves the parsed result in R_NAME (associative array) and RSS_MAX_NAME (KiB).
run_wrk() {
    local name=$1 path=$2 pid max=0 limit
    shift 2
    log "wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${WRK_DURATION}s --latency ${*//Bearer */Bearer <token>} $path"
    spawn "$TMP/wrk-$name.txt" wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${WRK_DURATION}s" \
        --latency --timeout 2s -s "$BENCH_DIR/report.lua" "$@" "$BASE$path"
    pid=$SPAWNED
    local busy0 srv0 wrk_ticks=0
    busy0=$(cpu_busy_ticks)
    srv0=$(proc_ticks "$LOAD_PID")
    limit=$((SECONDS + WRK_DURATION + 30))
    while kill -0 "$pid" 2>/dev/null; do
        # Command substitutions of functions fork; plain variables and builtins do not.
        read_rss_ticks "$pid"
        ((RSS_NOW > max)) && max=$RSS_NOW
        ((TICKS_NOW > wrk_ticks)) && wrk_ticks=$TICKS_NOW # the last is at most one nap before wrk ends
        if ((SECONDS >= limit)); then
            stop_pid "$pid" 2
            die "wrk did not finish in time"
        fi
        nap 0.1
    done
    wait "$pid" || die "wrk failed: $(cat "$TMP/wrk-$name.txt")"
    forget_pid "$pid"
    grep -v '^BENCH_RESULT' "$TMP/wrk-$name.txt" | sed 's/^/    /' >&2
    declare -gA "R_$name"
    local -n out="R_$name"
    local kv line
    line=$(grep -m1 '^BENCH_RESULT' "$TMP/wrk-$name.txt") || die "no result from wrk ($name)"
    for kv in ${line#BENCH_RESULT }; do out[${kv%%=*}]=${kv#*=}; done
    out[rps]=$(awk -v n="${out[requests]}" -v d="${out[duration_us]}" 'BEGIN{printf "%.0f", n/(d/1e6)}')
    out[errors]=$((out[connect] + out[read] + out[write] + out[timeout]))
    # CPU shares over the run, in % of one CPU: the server, wrk, and everything else.
    local busy=$(($(cpu_busy_ticks) - busy0)) srv=$(($(proc_ticks "$LOAD_PID") - srv0))
    read -r out[cpu_server] out[cpu_wrk] out[cpu_other] < <(awk -v b="$busy" -v s="$srv" -v w="$wrk_ticks" \
        -v d="${out[duration_us]}" -v hz="$CLK_TCK" 'BEGIN{f=100/(hz*d/1e6); o=b-s-w; if(o<0)o=0; printf "%.0f %.0f %.0f\n", s*f, w*f, o*f}')
    log "  CPU during the run (% of one CPU): server ${out[cpu_server]}, wrk ${out[cpu_wrk]}, other processes ${out[cpu_other]}"
    printf -v "RSS_MAX_$name" '%s' "$max"
}

kill -0 "$LOAD_PID" 2>/dev/null || die "the server died"
run_wrk v1 /api/greeting/v1/
kill -0 "$LOAD_PID" 2>/dev/null || die "the server died under load (v1)"
run_wrk v3 /api/greeting/v3/ -H "Authorization: Bearer $TOKEN"
kill -0 "$LOAD_PID" 2>/dev/null || die "the server died under load (v3)"

INTROSPECTIONS=$(curl -sS --fail --max-time 10 "$ISSUER/__stats" | json_field introspections)
RSS_AFTER=$(proc_field "$LOAD_PID" VmRSS)
RSS_HWM=$(proc_field "$LOAD_PID" VmHWM)
LOG_BYTES=$(stat -c %s "$TMP/load.log")
LOG_PROBLEMS=$(grep -cE '^\[[^]]* (WARN|ERROR) ' "$TMP/load.log" || true)
if ((LOG_PROBLEMS > 0)); then
    log "warnings/errors in the server log (first 5):"
    grep -E '^\[[^]]* (WARN|ERROR) ' "$TMP/load.log" | head -n5 | sed 's/^/    /' >&2
fi
stop_pid "$LOAD_PID"

# --- 4. summary ---------------------------------------------------------------------------

ms() { awk -v u="$1" 'BEGIN{printf "%.2f", u/1000}'; }
V3_REQS=$((R_v3[requests] + 1)) # + the warm-up request
RATIO=$(awk -v a="${R_v3[rps]}" -v b="${R_v1[rps]}" 'BEGIN{printf "%.2f", (b>0)?a/b:0}')
MISSED=()
awk -v r="$RATIO" 'BEGIN{exit !(r>=0.70)}' || MISSED+=("v3/v1 ratio $RATIO < 0.70")
[[ $INTROSPECTIONS == 1 ]] || MISSED+=("introspections $INTROSPECTIONS != 1")
for n in v1 v3; do
    local_non2xx=R_$n[non2xx] local_errors=R_$n[errors]
    ((${!local_non2xx} == 0)) || MISSED+=("$n: ${!local_non2xx} non-2xx responses")
    ((${!local_errors} == 0)) || MISSED+=("$n: ${!local_errors} socket errors")
done

wrk_line() {
    local -n r="R_$1"
    printf 'p50 %s ms, p99 %s ms, non-2xx %s, socket errors %s, CPU%% server %s / wrk %s / other %s' \
        "$(ms "${r[p50_us]}")" "$(ms "${r[p99_us]}")" "${r[non2xx]}" "${r[errors]}" \
        "${r[cpu_server]}" "${r[cpu_wrk]}" "${r[cpu_other]}"
}

SUMMARY=$(
    echo "== mrmat-api benchmark =="
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- crates/mrmat-api crates/mrmat-api-types Cargo.toml Cargo.lock 2>/dev/null || echo '+dirty'), $(nproc) CPUs, wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${WRK_DURATION}s, server --workers $SERVER_WORKERS, RUST_LOG=${SERVER_RUST_LOG:-default}, load avg before: $LOADAVG"
    echo "binary size: $(mib $((BIN_BYTES / 1024))) MiB ($BIN_BYTES bytes)"
    echo "cold start to first /healthz/ 200: min $COLD_MIN ms, median $COLD_MED ms ($COLD_RUNS runs)"
    echo "idle RSS: $(mib "$RSS_START") MiB after start, $(mib "$RSS_IDLE") MiB after ${IDLE_SECONDS} s idle ($THREADS_IDLE threads)"
    echo "greeting v1: ${R_v1[rps]} req/s, $(wrk_line v1)"
    echo "greeting v3 (warm cache): ${R_v3[rps]} req/s, $(wrk_line v3); ratio v3/v1 $RATIO (target >= 0.70)"
    echo "introspections for $V3_REQS v3 requests with one token: $INTROSPECTIONS (target 1, incl. warm-up)"
    echo "server RSS under load: max sampled $(mib "$((RSS_MAX_v1 > RSS_MAX_v3 ? RSS_MAX_v1 : RSS_MAX_v3))") MiB (v1 $(mib "$RSS_MAX_v1"), v3 $(mib "$RSS_MAX_v3")), peak VmHWM $(mib "$RSS_HWM") MiB, after load $(mib "$RSS_AFTER") MiB"
    echo "server log: $((LOG_BYTES / 1024)) KiB, $LOG_PROBLEMS WARN/ERROR lines"
    if ((${#MISSED[@]} == 0)); then
        echo "targets: all met"
    else
        printf 'targets: MISSED: %s\n' "$(IFS=';'; echo "${MISSED[*]}")"
    fi
)
echo
echo "$SUMMARY"
echo "$SUMMARY" >"$BENCH_DIR/last-run.txt"

if [[ $STRICT == 1 ]] && ((${#MISSED[@]} > 0)); then
    exit 3
fi

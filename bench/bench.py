"""The benchmark of issues 13, 18 and 20: mrmat-api against the floor (a bare actix-web
server), JWT access tokens checked by the server itself, and DPoP-bound tokens with a fresh
proof per request.

`bench/run.sh [--quick] [options]` runs this. It builds release, starts the test identity
provider (JWT access tokens on, for requests naming a resource), the server on SQLite
(with --public-url, so it checks JWTs naming it locally) and on PostgreSQL when reachable,
and the floor, then runs wrk against every target in interleaved rounds, sends 10,000
distinct JWTs once each, prints the table and writes docs/BENCHMARKS.md. See bench/README.md for what it measures and how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import harness as h

# Issue 13's targets.
GOAL_V1_FLOOR = 0.85
GOAL_V3_V1 = 0.85
GOAL_LIST_V1 = 0.25
GOAL_CREATES = 5000
GOAL_START_MS = 150
GOAL_IDLE_MIB = 20
# Issue 18's targets: greeting v3 with a JWT checked locally, warm, against v1; distinct
# JWTs cost no introspection and at most one JWKS fetch.
GOAL_V3JWT_V1 = 0.85
# Issue 23: greeting v1 with CORS and a rate limit on ÷ off, and with traces exported ÷ off.
GOAL_OPS_V1 = 0.9
GOAL_TRACED_V1 = 0.8
# Issue 24: the server's list, get and create on PostgreSQL ÷ pgbench running the same
# statements (bench/pgbench/) on the same database at the same concurrency.
GOAL_PG_PGBENCH = 0.5
# The origin the CORS server allows and wrk sends, and a limit the load never reaches (per
# client address: wrk is one), so every request pays the check and none is refused.
OPS_ORIGIN = "https://app.example"
OPS_RATE = "1000000000/s"
# The traced server's sampling ratio (OTEL_TRACES_SAMPLER_ARG).
TRACE_SAMPLE_RATIO = 0.1
GOAL_DISTINCT_INTROSPECTIONS = 0
GOAL_DISTINCT_JWKS = 1
# Issue 20: greeting v3 with a DPoP-bound (opaque) token and a fresh proof per request, against
# greeting v3 with a bearer token: no goal, the ratio is reported. Proofs minted per run:
# the previous run's rate × duration × DPOP_MARGIN + DPOP_SPARE (a calibration run of
# DPOP_CALIBRATE_S with DPOP_CALIBRATE_N proofs gives the first rate).
DPOP_MARGIN = 1.5
DPOP_SPARE = 2000
DPOP_CALIBRATE_N = 30_000
DPOP_CALIBRATE_S = 2  # wrk -d takes whole seconds
# The server accepts a proof whose iat is at most 60 s old: minting and the run must fit.
DPOP_PROOF_LIFE_S = 60
# The audience the test provider puts in the introspection of its opaque tokens: with
# --public-url the server checks audiences, and the opaque tokens of the other targets
# must still pass.
OPAQUE_AUDIENCE = "mrmat-api"
# Most verdicts the server caches (CACHE_CAPACITY, crates/mrmat-api/src/auth/introspection.rs):
# what bounds the memory distinct tokens can take.
SERVER_CACHE_CAPACITY = 100_000
# The concurrency the targets are judged at (as in the measurement).
JUDGE_C = 32
# Figures taken while other processes used more than this share of one CPU (median over
# the runs) are marked as taken under load.
BUSY_OTHER_PCT = 15


@dataclass
class Target:
    """One thing wrk measures: a path on one server, at some concurrencies."""

    key: str  # "floor", "v1", "v3", "v3jwt", "v3dpop", "v1ops", "v1traced", "list", "get", "create"
    db: str  # "-", "SQLite", "PostgreSQL"
    server: h.Server
    path: str
    concs: list[int]
    token: str | None = None
    create: bool = False
    headers: list[str] | None = None
    # A pgbench script of bench/pgbench/ run on `pg_url` instead of wrk, with -D variables.
    pgbench: str | None = None
    pg_url: str | None = None
    variables: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return f"{self.key}@{self.db}" if self.db != "-" else self.key


LABELS = {
    "floor": "floor: bare actix-web, greeting v1's path",
    "v1": "greeting v1",
    "v3": "greeting v3, warm cache",
    "v3jwt": "greeting v3, JWT, warm",
    "v3dpop": "greeting v3, DPoP, warm",
    "v1origin": "greeting v1, `Origin` sent",
    "v1ops": "greeting v1, CORS and rate limit on, `Origin` sent",
    "v1traced": "greeting v1, traces exported (1 request in 10 sampled)",
    "v1tracedall": "greeting v1, traces exported (every request sampled)",
    "list": "resource list, `?limit=10`",
    "get": "resource get",
    "create": "resource create",
    "pgb-list": "pgbench: the list's statement",
    "pgb-get": "pgbench: the get's statement",
    "pgb-create": "pgbench: the create's transaction",
}
# The pgbench target each PostgreSQL target is judged against.
PGBENCH_OF = {"list": "pgb-list", "get": "pgb-get", "create": "pgb-create"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s, 1 pair, 3 cold starts; writes no docs/BENCHMARKS.md")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds, every other one in the reverse order (default 4)")
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    p.add_argument(
        "--pairs",
        type=int,
        default=3,
        help=f"the floor and greeting v1 side by side this many times a round at c={JUDGE_C}, the judged ratio (default 3)",
    )
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2; at most the connections)")
    p.add_argument("--workers", type=int, default=2, help="--workers of the servers and the floor (default 2)")
    p.add_argument("--cold-runs", type=int, default=10, help="cold starts to time (default 10)")
    p.add_argument("--idle-seconds", type=float, default=5, help="idle time before the idle RSS reading (default 5)")
    p.add_argument("--distinct-jwts", type=int, default=10_000, help="distinct JWTs sent once each (default 10000)")
    p.add_argument("--rust-log", default=None, help="RUST_LOG of the servers (default: unset, i.e. the access log at info)")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", h.DEFAULT_POSTGRES_URL),
        help=f"PostgreSQL to make a fresh database on (default $BENCH_POSTGRES_URL or {h.DEFAULT_POSTGRES_URL})",
    )
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--output", type=Path, default=h.ROOT / "docs" / "BENCHMARKS.md", help="the generated document")
    p.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (server logs, wrk output)")
    p.add_argument("--strict", action="store_true", help="exit 3 when a target is missed")
    a = p.parse_args(argv)
    if a.pairs < 1:
        p.error("--pairs must be at least 1")
    if a.quick:
        a.rounds, a.pairs, a.duration, a.cold_runs, a.idle_seconds, a.distinct_jwts = 1, 1, 2, 3, 1, 2000
        a.no_doc = True
    elif a.rounds % 2:
        # Odd rounds run the floor first, even ones v1 first: an odd count gives one order
        # an extra vote in every median.
        h.log(f"--rounds {a.rounds} is odd: the floor-first order counts once more than the other")
    return a


def pg_port_open(url: str) -> bool:
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=2):
            return True
    except OSError:
        return False


def seed(server: h.Server, token: str, n: int = 10) -> int:
    """n resources owned by the token's client; returns the first id."""
    first = None
    for i in range(n):
        status, body = h.http_json(
            "POST",
            server.base + "/api/resource/v1/",
            body=f'{{"name":"seed-{i}"}}'.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        if status != 201 or not body:
            raise h.BenchError(f"seeding {server.name}: POST answered {status} {body}")
        first = first or body["id"]
    return first


def warm(server: h.Server, token: str) -> None:
    status, body = h.request("GET", server.base + "/api/greeting/v3/", headers={"Authorization": f"Bearer {token}"})
    if status != 200:
        raise h.BenchError(f"warm-up v3 on {server.name} answered {status}: {body[:300]!r}")


def warm_dpop(server: h.Server, token: str, dp: dict) -> None:
    """One v3 request with the DPoP-bound token and a proof of its own, so the run is warm."""
    proof = h.dpop_proof(dp["key"], "GET", dp["htu"], dp["token_file"])
    status, body = h.request(
        "GET", server.base + "/api/greeting/v3/", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )
    if status != 200:
        raise h.BenchError(f"warm-up v3 with DPoP on {server.name} answered {status}: {body[:300]!r}")


def dpop_run(args: argparse.Namespace, t: Target, c: int, rnd: int, dp: dict, tmp: Path, duration: float | None = None) -> h.Run:
    """One wrk run of greeting v3 with the DPoP-bound token: proofs for it minted right
    before (bench/dpop.mjs), one file per wrk thread, each proof sent once (wrk/dpop.lua).
    The run's requests are the proof requests only (fillers after a shortfall taken out)."""
    duration = duration or args.duration
    threads = max(1, min(args.threads, c))
    rate = dp["rate"].get(c)
    n = int(rate * duration * DPOP_MARGIN) + DPOP_SPARE if rate else DPOP_CALIBRATE_N
    prefix = tmp / f"dpop-proofs-r{rnd}-c{c}"
    h.log(f"[round {rnd}] {t.name} c={c}: minting {n:,} proofs" + (f" ({rate:,.0f}/s × {duration:g} s × {DPOP_MARGIN:g} + {DPOP_SPARE:,})" if rate else " (calibration)"))
    t0 = time.monotonic()
    per_s = h.dpop_proofs(dp["key"], "GET", dp["htu"], n, prefix, threads, dp["token_file"])
    mint_s = time.monotonic() - t0
    if mint_s + duration + 2 > DPOP_PROOF_LIFE_S:
        raise h.BenchError(f"minting {n:,} DPoP proofs took {mint_s:.0f} s: the oldest would be stale before the run ends")
    warm_dpop(t.server, t.token, dp)  # the cache may have expired since the last run
    r = h.wrk(
        t.server.pid,
        t.server.base + t.path,
        target=t.name,
        conc=c,
        round_no=rnd,
        duration=duration,
        threads=threads,
        script="dpop.lua",
        headers=[f"Authorization: DPoP {t.token}"],
        script_args=[str(prefix)],
        out_dir=tmp,
        until_threads_done=True,
        poll=0.1,
    )
    for f in tmp.glob(prefix.name + ".*"):
        f.unlink()
    fillers = r.extra.get("fillers", 0)
    r.requests = max(0, r.requests - fillers)
    r.extra.update(mint_n=n, mint_per_s=per_s, mint_s=mint_s, shortfall=fillers > 0)
    if fillers:
        h.log(f"    proofs ran out after {r.duration_s:.1f} s ({r.extra.get('proofs_sent', 0):,} sent, {fillers} fillers): {r.rps:,.0f} proof requests/s")
    dp["rate"][c] = r.rps
    return r


def distinct_jwts(args: argparse.Namespace, idp: h.Idp, srv: h.Server, public_url: str, tmp: Path) -> dict:
    """Issue 18: n distinct JWT access tokens naming the server, each sent once to greeting
    v3 by wrk (wrk/tokens.lua); the provider's calls, the server's cache and RSS meanwhile."""
    n = args.distinct_jwts
    h.log(f"distinct JWTs: minting {n:,} JWT access tokens (resource={public_url})")
    t0 = time.monotonic()
    tokens = h.mint_tokens(idp, n, resource=public_url)
    mint_s = time.monotonic() - t0
    if not all(t.count(".") == 2 for t in tokens):
        raise h.BenchError("the provider gave opaque tokens where JWTs were asked (IDP_JWT_ACCESS_TOKENS)")
    h.log(f"  {n / mint_s:,.0f} tokens/s ({mint_s:.1f} s)")
    path = tmp / "distinct-jwts.txt"
    path.write_text("\n".join(tokens) + "\n")
    hits, misses = "mrmat_api_introspection_cache_hits_total", "mrmat_api_introspection_cache_misses_total"
    time.sleep(1)
    d = {"n": n, "mint_per_s": n / mint_s}
    d["rss_before"], d["hwm_before"] = h.proc_status(srv.pid, "VmRSS"), h.proc_status(srv.pid, "VmHWM")
    stats0 = idp.stats()
    hits0, misses0 = h.metric(srv.base, hits), h.metric(srv.base, misses)
    threads = max(1, min(args.threads, JUDGE_C))
    r = h.wrk(
        srv.pid,
        srv.base + "/api/greeting/v3/",
        target="v3jwt-distinct",
        conc=JUDGE_C,
        round_no=0,
        duration=max(60, n / 100),
        threads=threads,
        script="tokens.lua",
        script_args=[str(path), str(threads)],
        out_dir=tmp,
        until_threads_done=True,
    )
    time.sleep(1)  # the cache's housekeeping settles before RSS is read
    d["rss_after"], d["hwm_after"] = h.proc_status(srv.pid, "VmRSS"), h.proc_status(srv.pid, "VmHWM")
    stats1 = idp.stats()
    d["hits"], d["misses"] = h.metric(srv.base, hits) - hits0, h.metric(srv.base, misses) - misses0
    d["introspections"] = stats1["introspections"] - stats0["introspections"]
    d["jwks"] = stats1.get("jwks_requests", 0) - stats0.get("jwks_requests", 0)
    d["run"] = r
    d["ok"], d["bad"], d["fillers"] = r.extra.get("ok", 0), r.extra.get("bad", 0), r.extra.get("fillers", 0)
    d["sent"] = d["ok"] + d["bad"]
    d["rps"] = d["sent"] / r.duration_s if r.duration_s else 0.0
    # A sample sent again, within the cache life: judged from the cache, no call anywhere.
    sample = tokens[:: max(1, n // 1000)]
    pool = h.Pool(srv.port)
    statuses: dict[int, int] = {}
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        for st in ex.map(
            lambda t: pool.call("GET", "/api/greeting/v3/", None, {"Authorization": f"Bearer {t}"})[0], sample, chunksize=32
        ):
            statuses[st] = statuses.get(st, 0) + 1
    stats2 = idp.stats()
    d["again_n"], d["again_statuses"] = len(sample), statuses
    d["again_hits"] = h.metric(srv.base, hits) - hits0 - d["hits"]
    d["again_misses"] = h.metric(srv.base, misses) - misses0 - d["misses"]
    d["again_introspections"] = stats2["introspections"] - stats1["introspections"]
    d["again_jwks"] = stats2.get("jwks_requests", 0) - stats1.get("jwks_requests", 0)
    d["rss_again"] = h.proc_status(srv.pid, "VmRSS")
    d["per_token"] = (d["rss_after"] - d["rss_before"]) * 1024 / n
    h.log(
        f"  {d['sent']:,} of {n:,} sent ({d['ok']:,} × 200, {d['bad']} other, {r.errors} socket errors, {d['fillers']} fillers), "
        f"{d['rps']:,.0f}/s; introspections {d['introspections']}, JWKS fetches {d['jwks']}; cache misses {d['misses']:,.0f}, "
        f"hits {d['hits']:,.0f}; RSS {h.mib(d['rss_before'])} → {h.mib(d['rss_after'])} MiB (VmHWM {h.mib(d['hwm_after'])}); "
        f"{len(sample):,} again: {statuses}, {d['again_hits']:,.0f} hits, {d['again_introspections']} introspections, {d['again_jwks']} JWKS"
    )
    return d


def main(argv: list[str]) -> int:
    return h.main(run, parse_args(argv))


def schedule(targets: list[Target], pairs: int) -> list[tuple[Target, int, int]]:
    """A round's runs, each as (target, concurrency, pair): the floor and greeting v1 side
    by side at each concurrency (their ratio is judged, and this machine's speed drifts by a
    third within seconds: the floor alone measured 126,000 to 182,000 req/s round by round
    at c=32), `pairs` times at c=32, every other pair in the reverse order; then every other
    target at each of its concurrencies, once.

    Several pairs a round at c=32 because each run there falls into one of two regimes for
    its whole length, and a pair whose runs fall apart gives a ratio far from the others
    (docs/BENCHMARKS.md, "Two regimes, and three pairs a round")."""
    paired = ("floor", "v1")
    pair = [t for t in targets if t.key in paired]
    concs = sorted({c for t in pair for c in t.concs})
    side_by_side = []
    for c in concs:
        both = [t for t in pair if c in t.concs]
        for n in range(pairs if c == JUDGE_C else 1):
            side_by_side += [(t, c, n) for t in (both if n % 2 == 0 else both[::-1])]
    rest = [(t, c, 0) for t in targets if t.key not in paired for c in t.concs]
    return side_by_side + rest


def run(args: argparse.Namespace, procs: h.Procs, tmp: Path, stack: contextlib.ExitStack) -> int:
    command = "bench/run.sh" + ("" if not sys.argv[1:] else " " + shlex.join(sys.argv[1:]))
    started = time.monotonic()
    use_pg = not args.no_postgres and pg_port_open(args.postgres_url)
    h.ensure_tools({"wrk": "wrk", **({"psql": "postgresql-client", "pgbench": "postgresql"} if use_pg else {})})
    if use_pg and not h.postgres_reachable(args.postgres_url):
        h.log(f"PostgreSQL at {args.postgres_url} does not answer: SQLite only")
        use_pg = False
    bins = h.build_release(["mrmat-api", "mrmat-api-floor"], tmp)
    server_bin, floor_bin = bins["mrmat-api"], bins["mrmat-api-floor"]
    cache_ttl = h.server_default(server_bin, "--oidc-cache-ttl", 30)
    box = h.machine()
    commit = h.git_describe()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    # --- cold start and idle memory (no OIDC: what a container start costs) -------------
    h.log(f"cold start: {args.cold_runs} runs (fresh instance dir and SQLite each, no OIDC)")
    cold = []
    for i in range(args.cold_runs):
        s = h.start_server(procs, server_bin, tmp, f"cold-{i}", rust_log=args.rust_log)
        cold.append(s.start_ms)
        procs.stop(s.proc)
    h.log("  " + ", ".join(f"{ms:.1f}" for ms in cold) + " ms")
    s = h.start_server(procs, server_bin, tmp, "idle", rust_log=args.rust_log)
    rss_start = s.idle_rss_kib
    time.sleep(args.idle_seconds)
    rss_idle = h.proc_status(s.pid, "VmRSS")
    threads_idle = h.proc_status(s.pid, "Threads")
    procs.stop(s.proc)
    s = h.start_floor(procs, floor_bin, tmp, "floor-idle", args.workers)
    time.sleep(args.idle_seconds)
    floor_rss_idle = h.proc_status(s.pid, "VmRSS")
    procs.stop(s.proc)

    # --- the targets ---------------------------------------------------------------------
    # JWT access tokens for requests that name a resource (RFC 8707); the others' stay opaque.
    idp = h.start_idp(procs, tmp, env={"IDP_JWT_ACCESS_TOKENS": "1"})
    floor = h.start_floor(procs, floor_bin, tmp, "floor", args.workers)
    # The SQLite server's public URL must be known before it starts: its port is picked first.
    sqlite_port = h.free_port()
    public_url = f"http://127.0.0.1:{sqlite_port}"
    servers = {
        "SQLite": h.start_server(
            procs,
            server_bin,
            tmp,
            "sqlite",
            idp=idp,
            workers=args.workers,
            rust_log=args.rust_log,
            port=sqlite_port,
            extra=["--public-url", public_url, "--oidc-audience", OPAQUE_AUDIENCE],
        )
    }
    if use_pg:
        db = stack.enter_context(h.PgDatabase(args.postgres_url, "main"))
        servers["PostgreSQL"] = h.start_server(
            procs, server_bin, tmp, "postgres", db=db.url, idp=idp, workers=args.workers, rust_log=args.rust_log
        )
    h.request("POST", idp.issuer + "/__stats/reset")
    tokens, first_auth, last_auth, auth_requests = {}, {}, {}, {}
    dp: dict = {}
    targets = [Target("floor", "-", floor, h.FLOOR_PATH, [1, 32, 256])]
    for dbname, srv in servers.items():
        token = idp.token()
        tokens[dbname] = token
        first_auth[dbname] = time.monotonic()
        first_id = seed(srv, token)
        warm(srv, token)
        auth_requests[dbname] = 11
        if dbname == "SQLite":
            # A JWT access token naming this server: checked against the provider's keys,
            # fetched once here (the warm-up), never introspected.
            jwt = idp.token(resource=public_url)
            if jwt.count(".") != 2:
                raise h.BenchError("the provider gave an opaque token where a JWT was asked (IDP_JWT_ACCESS_TOKENS)")
            warm(srv, jwt)
            auth_requests[dbname] += 1
            # A DPoP-bound opaque token (issue 20): asked with a proof of an Ed25519 key of
            # ours for the token endpoint; every request then needs a fresh proof by that key
            # for GET <public URL>/api/greeting/v3/ (with ath, the token's hash).
            dp = {"key": tmp / "dpop-key.pem", "htu": public_url + "/api/greeting/v3/", "rate": {}, "token_file": tmp / "dpop-token.txt"}
            dp["jkt"] = h.dpop_key(dp["key"])
            dtoken = idp.dpop_token(h.dpop_proof(dp["key"], "POST", idp.issuer + "/token"))
            dp["token_file"].write_text(dtoken + "\n")
            first_auth["SQLite DPoP"] = time.monotonic()
            auth_requests["SQLite DPoP"] = 0
            # Greeting does not touch the database: measured once, on the SQLite server.
            targets += [
                Target("v1", dbname, srv, "/api/greeting/v1/", [1, 32, 256]),
                Target("v3", dbname, srv, "/api/greeting/v3/", [1, 32], token),
                Target("v3jwt", dbname, srv, "/api/greeting/v3/", [1, 32], jwt),
                Target("v3dpop", dbname, srv, "/api/greeting/v3/", [JUDGE_C], dtoken),
            ]
        targets += [
            Target("list", dbname, srv, "/api/resource/v1/?limit=10", [1, 32], token),
            Target("get", dbname, srv, f"/api/resource/v1/{first_id}", [1, 32], token),
            Target("create", dbname, srv, "/api/resource/v1/", [1, 32], token, create=True),
        ]
        if dbname == "PostgreSQL":
            # The database's own speed for what each request sends, on the same database
            # (its rows, its owner), between the server's runs in every round.
            subject = f"client:{h.RW_CLIENT[0]}"
            owner = h.psql(db.url, f"SELECT id FROM owners WHERE subject = '{subject}'").strip()
            created = {"subject": subject, "issuer": idp.issuer, "owner": owner, "at": "2026-12-06 12:00:00.000001"}
            targets += [
                Target("pgb-list", dbname, srv, "", [JUDGE_C], pgbench="list.sql", pg_url=db.url),
                Target("pgb-get", dbname, srv, "", [JUDGE_C], pgbench="get.sql", pg_url=db.url, variables={"id": str(first_id)}),
                Target("pgb-create", dbname, srv, "", [JUDGE_C], pgbench="create.sql", pg_url=db.url, variables=created),
            ]

    # Issue 23: the same greeting on a server with CORS and a rate limit on, and on two
    # exporting spans to an OTLP sink: one sampling a request in ten
    # (parentbased_traceidratio 0.1, how a busy service runs; judged), one every request
    # (the SDK's default sampler; shown). Both with the SDK's batch of at most 512 spans
    # and its queue of 2,048 that drops what overflows.
    ops = h.start_server(
        procs, server_bin, tmp, "ops", workers=args.workers, rust_log=args.rust_log,
        extra=["--cors-origins", OPS_ORIGIN, "--rate-limit", OPS_RATE],
    )
    sink = h.OtlpSink()
    stack.callback(sink.close)
    traced = h.start_server(
        procs, server_bin, tmp, "traced", workers=args.workers, rust_log=args.rust_log,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(TRACE_SAMPLE_RATIO),
        },
    )
    traced_all = h.start_server(
        procs, server_bin, tmp, "traced-all", workers=args.workers, rust_log=args.rust_log,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint},
    )
    targets += [
        # The same request (Origin included) to the server without CORS or limits: the
        # baseline of the CORS and limit row, so only the server differs.
        Target("v1origin", "SQLite", servers["SQLite"], "/api/greeting/v1/", [JUDGE_C], headers=[f"Origin: {OPS_ORIGIN}"]),
        Target("v1ops", "SQLite", ops, "/api/greeting/v1/", [JUDGE_C], headers=[f"Origin: {OPS_ORIGIN}"]),
        Target("v1traced", "SQLite", traced, "/api/greeting/v1/", [JUDGE_C]),
        Target("v1tracedall", "SQLite", traced_all, "/api/greeting/v1/", [JUDGE_C]),
    ]

    # The DPoP target's first proof count: a short calibration run (not reported).
    for t in targets:
        if t.key == "v3dpop":
            for c in t.concs:
                r = dpop_run(args, t, c, 0, dp, tmp, duration=DPOP_CALIBRATE_S)
                auth_requests["SQLite DPoP"] += r.requests + 1
                last_auth["SQLite DPoP"] = time.monotonic()

    runs: list[h.Run] = []
    order = schedule(targets, args.pairs)
    for rnd in range(1, args.rounds + 1):
        # Every other round in the reverse order: the two runs of a pair trade places.
        for t, c, pair in order if rnd % 2 else order[::-1]:
            if t.key == "v3dpop":
                r = dpop_run(args, t, c, rnd, dp, tmp)
                runs.append(r)
                auth_requests["SQLite DPoP"] += r.requests + 1
                last_auth["SQLite DPoP"] = time.monotonic()
                if t.server.proc.poll() is not None:
                    raise h.BenchError(f"{t.server.name} died under load ({t.name} c={c})")
                continue
            if t.pgbench:
                runs.append(
                    h.pgbench(
                        t.pg_url,
                        t.pgbench,
                        target=t.name,
                        conc=c,
                        round_no=rnd,
                        duration=args.duration,
                        threads=args.threads,
                        out_dir=tmp,
                        variables=t.variables,
                    )
                )
                continue
            headers, script, sargs = list(t.headers or []), "report.lua", None
            if t.token:
                if t.key in ("v3", "v3jwt"):
                    warm(t.server, t.token)  # the cache may have expired since the last run
                    auth_requests[t.db] += 1
                headers.append(f"Authorization: Bearer {t.token}")
            if t.create:
                script, sargs = "create.lua", [f"r{rnd}c{c}"]
            r = h.wrk(
                t.server.pid,
                t.server.base + t.path,
                target=t.name,
                conc=c,
                round_no=rnd,
                duration=args.duration,
                threads=args.threads,
                script=script,
                headers=headers,
                script_args=sargs,
                out_dir=tmp,
                pair=pair,
            )
            runs.append(r)
            if t.token:
                auth_requests[t.db] += r.requests
                last_auth[t.db] = time.monotonic()
            if t.server.proc.poll() is not None:
                raise h.BenchError(f"{t.server.name} died under load ({t.name} c={c})")

    stats = idp.stats()
    introspections, jwks_rounds = int(stats["introspections"]), int(stats.get("jwks_requests", 0))
    # One introspection per token per cache life: each server has its own token and
    # cache, and a life starts at an introspection, so a working cache makes at most
    # 1 + floor(span / ttl) calls for a token used over `span` seconds.
    # The DPoP-bound token is a second opaque token on the SQLite server ("SQLite DPoP").
    allowed = sum(1 + int((last_auth.get(d, first_auth[d]) - first_auth[d]) // cache_ttl) for d in first_auth)
    after = {d: (h.proc_status(s.pid, "VmRSS"), h.proc_status(s.pid, "VmHWM")) for d, s in servers.items()}
    log_bytes = servers["SQLite"].log_path.stat().st_size
    for s in [floor, *(s for d, s in servers.items() if d != "SQLite")]:
        procs.stop(s.proc)  # idle from now on: the distinct-token phase has the machine
    dj = distinct_jwts(args, idp, servers["SQLite"], public_url, tmp)
    jwks_total = idp.jwks_requests()
    problems = [
        line
        for s in servers.values()
        for line in s.log_path.read_text(errors="replace").splitlines()
        if " WARN " in line or " ERROR " in line
    ]
    # Expected with the test provider: its published secrets, and no OIDC on the idle runs.
    problems = [p for p in problems if "Running without" not in p and "published placeholder" not in p]
    for s in [floor, *servers.values()]:
        procs.stop(s.proc)

    # --- figures ---------------------------------------------------------------------------
    def med(name: str, c: int, attr: str) -> float:
        return h.median(getattr(r, attr) for r in runs if r.target == name and r.conc == c)

    def round_ratios(name: str, base: str, c: int, attr: str = "rps") -> list[float]:
        """`name`'s figure ÷ `base`'s req/s, run by run in the same round, in the order of
        the rounds (and pairs): each run is compared with a run of its own round, never with
        another round's machine. Where both ran several pairs (the floor and v1 at c=32), a
        run is compared with its pair's; else with the median of the base's runs in its
        round (v3 against v1's pairs). Rounds missing either run are left out, and the log
        says so."""
        of_base: dict[int, dict[int, float]] = {}
        for r in runs:
            if r.target == base and r.conc == c and r.rps:
                of_base.setdefault(r.round, {})[r.pair] = r.rps
        mine = sorted((r for r in runs if r.target == name and r.conc == c), key=lambda r: (r.round, r.pair))
        pairs_of = {rnd: sum(1 for r in mine if r.round == rnd) for rnd in {r.round for r in mine}}
        ratios = []
        for r in mine:
            in_round = of_base.get(r.round)
            if not in_round:
                continue
            if pairs_of[r.round] > 1:
                if r.pair not in in_round:
                    h.log(f"{name} ÷ {base} at c={c}: round {r.round} pair {r.pair + 1} has no {base} run; left out")
                    continue
                base_rps = in_round[r.pair]
            else:
                base_rps = h.median(in_round.values())
            ratios.append(getattr(r, attr) / base_rps)
        rounds = len({r.round for r in mine if of_base.get(r.round)})
        if rounds < args.rounds:
            h.log(f"{name} ÷ {base} at c={c}: {rounds} of {args.rounds} rounds have both runs")
        return ratios

    def paired(name: str, base: str, c: int, attr: str = "rps") -> float:
        """The median of `round_ratios`; with no pair at all, no figure: nan, shown as
        such, and no goal is met by it."""
        ratios = round_ratios(name, base, c, attr)
        return h.median(ratios) if ratios else math.nan

    def by_round(name: str, base: str, c: int) -> str:
        """`name` ÷ `base`, round by round and pair by pair."""
        return ", ".join(f"{x:.2f}" for x in round_ratios(name, base, c))

    rows, text_rows = [], []
    ratio = {}
    for t in targets:
        for c in t.concs:
            rps = med(t.name, c, "rps")
            if t.key == "floor":
                rel = "1.00 (floor)"
            elif t.key == "v1":
                ratio[("v1", c)] = paired(t.name, "floor", c)
                rel = f"{ratio[('v1', c)]:.2f} × floor"
            elif t.key == "v3dpop":
                ratio[(t.name, c)] = paired(t.name, "v3@SQLite", c)
                rel = f"{ratio[(t.name, c)]:.2f} × v3 bearer ({paired(t.name, 'v1@SQLite', c):.2f} × v1)"
            elif t.key == "v1ops":
                ratio[(t.name, c)] = paired(t.name, "v1origin@SQLite", c)
                rel = f"{ratio[(t.name, c)]:.2f} × v1 with `Origin`"
            elif t.key.startswith("pgb-"):
                rel = "the database's own speed"
            elif t.key == "create":
                cps = med(t.name, c, "created_per_s")
                ratio[(t.name, c)] = cps
                rel = f"{h.thousands(cps)} creates/s"
            else:
                ratio[(t.name, c)] = paired(t.name, "v1@SQLite", c)
                rel = f"{ratio[(t.name, c)]:.2f} × v1"
            base = f"{PGBENCH_OF.get(t.key)}@{t.db}"
            if any(r.target == base and r.conc == c for r in runs):
                ratio[("pgbench", t.key, c)] = paired(t.name, base, c, "created_per_s" if t.create else "rps")
                rel += f"; {ratio[('pgbench', t.key, c)]:.2f} × pgbench"
            non2xx = int(sum(r.non2xx + r.errors for r in runs if r.target == t.name and r.conc == c))
            if t.create:
                other = sum(r.extra.get("other_status", 0) for r in runs if r.target == t.name and r.conc == c)
                created = sum(r.created or 0 for r in runs if r.target == t.name and r.conc == c)
                non2xx_s = f"{non2xx} ({created:,} × 201, {other} other)"
            else:
                non2xx_s = str(non2xx)
            row = [
                LABELS[t.key],
                t.db,
                str(c),
                h.thousands(rps),
                f"{med(t.name, c, 'p50_ms'):.2f}",
                f"{med(t.name, c, 'p99_ms'):.2f}",
                non2xx_s,
                rel,
                f"{med(t.name, c, 'cpu_other'):.0f}",
            ]
            rows.append(row)
            text_rows.append(row)

    n_dj = dj["n"]
    dj_run = dj["run"]
    v1_judged = med("v1@SQLite", JUDGE_C, "rps")
    ratio["distinct"] = dj["rps"] / v1_judged if v1_judged else 0
    dj_label = f"greeting v3, {n_dj:,} distinct JWTs once each (cache misses)"
    dj_row = [
        dj_label,
        "SQLite",
        str(JUDGE_C),
        h.thousands(dj["rps"]),
        f"{dj_run.p50_ms:.2f}",
        f"{dj_run.p99_ms:.2f}",
        str(dj["bad"] + dj_run.errors + (n_dj - dj["sent"])),
        f"{ratio['distinct']:.2f} × v1 (one run)",
        f"{dj_run.cpu_other:.0f}",
    ]
    rows.append(dj_row)
    text_rows.append(dj_row)

    dpop_runs = [r for r in runs if r.target == "v3dpop@SQLite"]
    dpop_mint = h.median(r.extra["mint_per_s"] for r in dpop_runs)
    dpop_n = [r.extra["mint_n"] for r in dpop_runs]
    dpop_short = sum(1 for r in dpop_runs if r.extra.get("shortfall"))
    dpop_line = (
        f"DPoP: an Ed25519 key (EdDSA proofs), an opaque token bound to it; {', '.join(f'{n:,}' for n in dpop_n)} proofs minted "
        f"before the runs (median {dpop_mint:,.0f}/s), {dpop_short} of {len(dpop_runs)} runs ran out of proofs"
    )

    others = [r.cpu_other for r in runs]
    other_med, other_max = h.median(others), max(others) if others else 0
    under_load = other_med > BUSY_OTHER_PCT
    cold_sorted = sorted(cold)
    cold_min, cold_med = cold_sorted[0], h.median(cold_sorted)
    rss_max = {d: max((r.rss_max_kib for r in runs if r.target.endswith("@" + d)), default=0) for d in servers}
    floor_rss_max = max((r.rss_max_kib for r in runs if r.target == "floor"), default=0)

    goals = []

    def goal(what: str, measured: str, want: str, ok: bool | None) -> None:
        # None: shown beside a target, judged by none (see the PostgreSQL list below).
        status = "context" if ok is None else "met" if ok else "**missed**"
        goals.append([what, measured, want, status])

    goal(f"greeting v1 ÷ floor (c={JUDGE_C})", f"{ratio[('v1', JUDGE_C)]:.2f}", f"≥ {GOAL_V1_FLOOR}", ratio[("v1", JUDGE_C)] >= GOAL_V1_FLOOR)
    goal(f"greeting v3 warm ÷ v1 (c={JUDGE_C})", f"{ratio[('v3@SQLite', JUDGE_C)]:.2f}", f"≥ {GOAL_V3_V1}", ratio[("v3@SQLite", JUDGE_C)] >= GOAL_V3_V1)
    goal(
        f"greeting v3 JWT warm ÷ v1 (c={JUDGE_C})",
        f"{ratio[('v3jwt@SQLite', JUDGE_C)]:.2f}",
        f"≥ {GOAL_V3JWT_V1}",
        ratio[("v3jwt@SQLite", JUDGE_C)] >= GOAL_V3JWT_V1,
    )
    goal(
        f"greeting v1, CORS and rate limit on ÷ off, the same requests (c={JUDGE_C})",
        f"{ratio[('v1ops@SQLite', JUDGE_C)]:.2f}",
        f"≥ {GOAL_OPS_V1}",
        ratio[("v1ops@SQLite", JUDGE_C)] >= GOAL_OPS_V1,
    )
    goal(
        f"greeting v1, traces exported, 1 in {round(1 / TRACE_SAMPLE_RATIO)} sampled ÷ off (c={JUDGE_C})",
        f"{ratio[('v1traced@SQLite', JUDGE_C)]:.2f}",
        f"≥ {GOAL_TRACED_V1}",
        ratio[("v1traced@SQLite", JUDGE_C)] >= GOAL_TRACED_V1,
    )
    goal(
        f"greeting v1, traces exported, every request sampled ÷ off (c={JUDGE_C})",
        f"{ratio[('v1tracedall@SQLite', JUDGE_C)]:.2f} (both traced servers: {sink.requests:,} exports, {sink.bytes / 2**20:,.1f} MiB)",
        "none (shown: what a span per request costs)",
        None,
    )
    dpop_rps, v3_rps = med("v3dpop@SQLite", JUDGE_C, "rps"), med("v3@SQLite", JUDGE_C, "rps")
    goal(
        f"greeting v3 DPoP warm ÷ v3 bearer (c={JUDGE_C})",
        f"{ratio[('v3dpop@SQLite', JUDGE_C)]:.2f} ({h.thousands(dpop_rps)} vs {h.thousands(v3_rps)} req/s)",
        "none set (issue 20: reported)",
        None,
    )
    for d in servers:
        goal(
            f"resource list ÷ v1 (c={JUDGE_C}, {d})",
            f"{ratio[(f'list@{d}', JUDGE_C)]:.2f}",
            f"≥ {GOAL_LIST_V1}",
            # The targets are for default settings, i.e. SQLite. The PostgreSQL server of
            # this benchmark runs on the same cores as the server and wrk, so its list
            # is shown beside the target, not judged by it.
            ratio[(f"list@{d}", JUDGE_C)] >= GOAL_LIST_V1 if d == "SQLite" else None,
        )
    for key in PGBENCH_OF:
        if ("pgbench", key, JUDGE_C) in ratio:
            goal(
                f"resource {key} on PostgreSQL ÷ pgbench, the same statements (c={JUDGE_C})",
                f"{ratio[('pgbench', key, JUDGE_C)]:.2f}",
                f"≥ {GOAL_PG_PGBENCH}",
                ratio[("pgbench", key, JUDGE_C)] >= GOAL_PG_PGBENCH,
            )
    goal(
        f"creates on SQLite (c={JUDGE_C})",
        f"{h.thousands(ratio[('create@SQLite', JUDGE_C)])}/s",
        f"≥ {GOAL_CREATES:,}/s",
        ratio[("create@SQLite", JUDGE_C)] >= GOAL_CREATES,
    )
    goal("cold start to first /healthz/ 200 (median)", f"{cold_med:.1f} ms", f"< {GOAL_START_MS} ms", cold_med < GOAL_START_MS)
    goal(f"idle RSS (after {args.idle_seconds:g} s)", f"{h.mib(rss_idle)} MiB", f"< {GOAL_IDLE_MIB} MiB", rss_idle / 1024 < GOAL_IDLE_MIB)
    goal(
        "introspections, all authenticated requests",
        f"{introspections} for {sum(auth_requests.values()):,}",
        f"≤ {allowed} (1 per opaque token per {cache_ttl} s cache life; none for the JWT)",
        introspections <= allowed,
    )
    dj_all_200 = dj["ok"] == n_dj and dj["bad"] == 0 and dj_run.errors == 0
    goal(
        f"{n_dj:,} distinct JWTs: answers",
        f"{dj['ok']:,} × 200 of {n_dj:,} sent once each" + ("" if dj_all_200 else f" ({dj['bad']} other, {dj_run.errors} socket errors)"),
        "all 200",
        dj_all_200,
    )
    goal(
        f"{n_dj:,} distinct JWTs: introspections",
        str(dj["introspections"]),
        str(GOAL_DISTINCT_INTROSPECTIONS),
        dj["introspections"] <= GOAL_DISTINCT_INTROSPECTIONS,
    )
    goal(
        f"{n_dj:,} distinct JWTs: JWKS fetches",
        f"{dj['jwks']} ({jwks_total} in the whole run: the warm-up's)",
        f"≤ {GOAL_DISTINCT_JWKS}",
        dj["jwks"] <= GOAL_DISTINCT_JWKS,
    )
    goal(
        f"{n_dj:,} distinct JWTs: server RSS before → after",
        f"{h.mib(dj['rss_before'])} → {h.mib(dj['rss_after'])} MiB ({dj['per_token']:,.0f} B/token; VmHWM {h.mib(dj['hwm_after'])})",
        f"bounded (cache ≤ {SERVER_CACHE_CAPACITY:,} entries)",
        None,
    )
    failures = sum(int(r[6].split()[0]) for r in rows)
    goal("non-2xx answers and socket errors, all runs", str(failures), "0", failures == 0)
    missed = [g for g in goals if g[3] == "**missed**"]

    header = ["target", "database", "c", "req/s", "p50 ms", "p99 ms", "non-2xx", "ratio", "other CPU %"]
    elapsed = time.monotonic() - started
    load_note = (
        f"**Taken under load**: other processes used a median {other_med:.0f}% of one CPU "
        f"(max {other_max:.0f}%) during the runs, on {box['cores']} cores. Absolute figures are context "
        "only; the ratios, taken in interleaved rounds, suffer less but are still approximate: "
        "judge the targets on a quiet machine."
        if under_load
        else f"Other processes used a median {other_med:.0f}% of one CPU (max {other_max:.0f}%) during the runs."
    )
    summary = "\n".join(
        [
            "== mrmat-api benchmark ==",
            f"{when}, commit {commit}, {box['cpu']}, {box['cores']} cores, load avg before {box['load']}",
            f"command: {command}",
            load_note.replace("**", ""),
            "",
            h.text_table(header, text_rows),
            "",
            f"cold start: min {cold_min:.1f} ms, median {cold_med:.1f} ms ({len(cold)} runs)",
            f"idle RSS: {h.mib(rss_start)} MiB after start, {h.mib(rss_idle)} MiB after {args.idle_seconds:g} s ({threads_idle} threads); floor {h.mib(floor_rss_idle)} MiB",
            "RSS under load (max sampled): "
            + ", ".join(f"{d} {h.mib(rss_max[d])} MiB (after {h.mib(after[d][0])}, VmHWM {h.mib(after[d][1])})" for d in servers)
            + f"; floor {h.mib(floor_rss_max)} MiB",
            f"introspections: {introspections} for {sum(auth_requests.values()):,} authenticated requests (allowed {allowed}); "
            f"JWKS fetches {jwks_rounds} over the rounds",
            f"{n_dj:,} distinct JWTs (minted at {dj['mint_per_s']:,.0f}/s, sent once each at c={JUDGE_C}): "
            f"{dj['sent']:,} sent, {dj['ok']:,} × 200, {dj['bad']} other, {dj_run.errors} socket errors, {dj['rps']:,.0f}/s "
            f"({ratio['distinct']:.2f} × v1); introspections {dj['introspections']}, JWKS fetches {dj['jwks']} "
            f"({jwks_total} in the whole run); cache misses +{dj['misses']:,.0f}, hits +{dj['hits']:,.0f}",
            f"  RSS {h.mib(dj['rss_before'])} → {h.mib(dj['rss_after'])} MiB ({dj['per_token']:,.0f} B/token), "
            f"VmHWM {h.mib(dj['hwm_before'])} → {h.mib(dj['hwm_after'])} MiB, max sampled {h.mib(dj_run.rss_max_kib)} MiB; "
            f"{dj['again_n']:,} of them again: {dj['again_statuses']}, cache hits +{dj['again_hits']:,.0f}, "
            f"misses +{dj['again_misses']:,.0f}, introspections {dj['again_introspections']}, JWKS {dj['again_jwks']}, "
            f"RSS {h.mib(dj['rss_again'])} MiB",
            dpop_line,
            f"server log: {log_bytes // 1024} KiB (SQLite server), {len(problems)} WARN/ERROR lines",
            "",
            h.text_table(["target", "measured", "goal", ""], [[g[0], g[1], g[2], g[3].replace("*", "")] for g in goals]),
            f"targets: {'all met' if not missed else 'MISSED: ' + '; '.join(g[0] for g in missed)}",
            f"({elapsed / 60:.1f} min)",
        ]
    )
    print()
    print(summary)
    (h.BENCH_DIR / "last-run.txt").write_text(summary + "\n")
    for p in problems[:5]:
        h.log(f"server log: {p}")

    if not args.no_doc:
        every = h.md_table(
            ["target", "db", "c", "round", "req/s", "p50 ms", "p99 ms", "non-2xx", "CPU % server / wrk / other"],
            [
                [
                    LABELS[r.target.split("@")[0]],
                    r.target.split("@")[1] if "@" in r.target else "-",
                    str(r.conc),
                    f"{r.round}" + (f" (pair {r.pair + 1})" if r.pair else ""),
                    h.thousands(r.rps),
                    f"{r.p50_ms:.2f}",
                    f"{r.p99_ms:.2f}",
                    str(r.non2xx + r.errors),
                    f"{r.cpu_server:.0f} / {r.cpu_wrk:.0f} / {r.cpu_other:.0f}",
                ]
                for r in runs
            ],
        )
        doc = f"""# Benchmarks

> **Generated** by `{command}` ({h.BENCH_DIR.name}/bench.py) on {when}, commit `{commit}`.
> Do not edit by hand: regenerate with `bench/run.sh` (a few minutes; `bench/README.md`
> explains every figure). The last part, "How cost grows", comes from `bench/scale.sh`.

Machine: {box['cpu']}, {box['cores']} cores, {box['mem']}, Linux {box['kernel']}; load average
before the run {box['load']}. Release build, `--workers {args.workers}` for the servers and the
floor, `wrk -t{args.threads}` (one thread at c=1) on the same cores, {args.duration:g} s per run,
{args.rounds} interleaved rounds (every target once per round but the pair below, every other round in the
reverse order, so drifting machine load hits all alike; the floor and greeting v1 side by
side at each concurrency, {args.pairs} {'time' if args.pairs == 1 else 'times'} a round at c={JUDGE_C}, every other pair in the
reverse order), medians over the runs. Each ratio is the median of its run-by-run ratios:
a run is only ever compared with a run of its own round (the floor's and v1's at c={JUDGE_C}
with their own pair's; the others with the median of the base's runs in the round). Default server settings: `RUST_LOG` {'unset, so the access log writes one line per request at info' if not args.rust_log else '`' + args.rust_log + '`'};
introspection cache life {cache_ttl} s. The test provider issues JWT access tokens
(`IDP_JWT_ACCESS_TOKENS=1`) to requests naming a resource (RFC 8707), opaque ones to the
others; the SQLite server has `--public-url {public_url}` (so it checks JWTs naming it
against the provider's keys, with no introspection) and `--oidc-audience {OPAQUE_AUDIENCE}` (the
audience in the introspection of the provider's opaque tokens, which the other targets use).

Greeting v3 with DPoP (issue 20): an opaque token of `mrmat-api-test-rw` bound to an
Ed25519 key of the benchmark's (a client-credentials request carrying a proof by that
key: `token_type` DPoP, introspected with `cnf.jkt`), sent as `Authorization: DPoP` with a
fresh EdDSA proof per request (a unique `jti`, `iat` at minting, `htm` GET, `htu`
`{public_url}/api/greeting/v3/`, `ath`): the server verifies one signature and inserts
one `jti` into its replay cache per request, on top of what greeting v3 with a bearer token
does. The proofs are minted by `bench/dpop.mjs` (Node's crypto, no packages) right before
each run, {DPOP_MARGIN:g} × the previous run's rate × the duration + {DPOP_SPARE:,} (a
{DPOP_CALIBRATE_S:g} s calibration run gives the first rate), and each is sent once by
`wrk/dpop.lua` (a thread out of proofs sends untokened fillers, not counted, and the run
ends there). That script builds each request in Lua, where the other runs send wrk's
static request: its wrk uses somewhat more CPU (see every run's CPU split). {dpop_line}.
The replay cache remembers every proof for 70 s, so the server's RSS under load includes
it.

{load_note}

## Targets (issues 13, 18, 20 and 23)

Judged at c={JUDGE_C}, with default settings, i.e. on SQLite; and on PostgreSQL (issue 24)
the server's list, get and create against pgbench running the statements the server sends
(`bench/pgbench/`, `-M prepared`) on the same database at the same concurrency, in the same
rounds: the database's own speed on this machine, where it shares the cores with the
server and wrk as it does with pgbench. The PostgreSQL list ÷ greeting v1 is context.

{h.md_table(["target", "measured", "goal", ""], goals)}

## Throughput and latency

Median of {args.rounds} rounds' runs; "ratio" is the median of the ratios run by run. It is
greeting v1 to the floor ({by_round("v1@SQLite", "floor", JUDGE_C)} at c={JUDGE_C}, pair by pair, {args.pairs} a round); greeting v3 with DPoP to
greeting v3 with a bearer token (and to v1); greeting v3 (opaque
token or JWT) and the resource reads to greeting v1 (of the SQLite server; greeting does
not touch the database); creates as 201 answers per second. The last row is the one run
of the distinct-JWT phase below (every request a cache miss), against v1's median. "non-2xx" counts error statuses and socket
errors over all rounds. "other CPU %": the median share of one CPU that processes other
than the server and wrk used during the runs (this machine's other work).

{h.md_table(header, rows)}

## Memory and start

| figure | value |
|---|---|
| cold start, spawn to first `/healthz/` 200 (fresh SQLite, migrations included) | min {cold_min:.1f} ms, median {cold_med:.1f} ms ({len(cold)} runs) |
| server RSS after start / after {args.idle_seconds:g} s idle (no OIDC) | {h.mib(rss_start)} / {h.mib(rss_idle)} MiB ({threads_idle} threads) |
| floor RSS after {args.idle_seconds:g} s idle | {h.mib(floor_rss_idle)} MiB |
""" + "".join(
            f"| server RSS, {d}: after start with OIDC / max under load / after the load / VmHWM | "
            f"{h.mib(servers[d].idle_rss_kib)} / {h.mib(rss_max[d])} / {h.mib(after[d][0])} / {h.mib(after[d][1])} MiB |\n"
            for d in servers
        ) + f"""| floor RSS, max under load | {h.mib(floor_rss_max)} MiB |
| binary size | {h.mib(server_bin.stat().st_size / 1024)} MiB (floor {h.mib(floor_bin.stat().st_size / 1024)} MiB) |
| introspections for {sum(auth_requests.values()):,} authenticated requests (one opaque token per server, and the DPoP-bound one on SQLite) | {introspections} (a working cache allows {allowed}) |
| server log | {log_bytes // 1024} KiB for the SQLite server (the rounds), {len(problems)} WARN/ERROR lines (whole run) |

## {n_dj:,} distinct JWTs (issue 18)

After the rounds (the floor and the PostgreSQL server stopped), {n_dj:,} JWT access tokens of
`mrmat-api-test-rw` with `resource={public_url}` (so `aud` names the SQLite server),
minted by 8 Python threads at {dj['mint_per_s']:,.0f}/s, each sent once to `GET /api/greeting/v3/` by
`wrk -t{max(1, min(args.threads, JUDGE_C))} -c{JUDGE_C}` (`wrk/tokens.lua`: thread i takes every n-th token, stops when its
last is answered). Then every {max(1, n_dj // 1000)}th of them again, within the {cache_ttl} s cache life. Provider
calls from its `/__stats`, cache hits and misses from the server's `/metrics`
(`mrmat_api_introspection_cache_*`: JWTs are cached in the same verdict cache).

| figure | value |
|---|---|
| tokens sent / answered 200 / other / socket errors | {dj['sent']:,} / {dj['ok']:,} / {dj['bad']} / {dj_run.errors} ({dj['fillers']} untokened v1 fillers after a thread's last token, not counted) |
| throughput, every token a cache miss | {dj['rps']:,.0f}/s = {ratio['distinct']:.2f} × greeting v1 at c={JUDGE_C} ({h.thousands(v1_judged)}/s, median of its runs); p50 {dj_run.p50_ms:.2f} ms, p99 {dj_run.p99_ms:.2f} ms; other CPU {dj_run.cpu_other:.0f}% |
| introspections during the phase | {dj['introspections']} (goal {GOAL_DISTINCT_INTROSPECTIONS}) |
| JWKS fetches during the phase | {dj['jwks']} (goal ≤ {GOAL_DISTINCT_JWKS}); {jwks_total} in the whole run, {jwks_rounds} of them by the end of the rounds: the keys are fetched at the first JWT (the warm-up) and kept for 15 min, so a phase within that costs none |
| server cache during the phase | misses +{dj['misses']:,.0f}, hits +{dj['hits']:,.0f} (every token judged once, against the cached keys) |
| {dj['again_n']:,} of the tokens sent again | {', '.join(f"{n:,} × {st}" for st, n in sorted(dj['again_statuses'].items()))}; cache hits +{dj['again_hits']:,.0f}, misses +{dj['again_misses']:,.0f}; introspections {dj['again_introspections']}, JWKS fetches {dj['again_jwks']} |
| server RSS before / max sampled / after the phase | {h.mib(dj['rss_before'])} / {h.mib(dj_run.rss_max_kib)} / {h.mib(dj['rss_after'])} MiB: {(dj['rss_after'] - dj['rss_before']) / 1024:+.1f} MiB, {dj['per_token']:,.0f} bytes per token |
| server VmHWM before / after the phase | {h.mib(dj['hwm_before'])} / {h.mib(dj['hwm_after'])} MiB |
| server RSS after the sample again | {h.mib(dj['rss_again'])} MiB |

What bounds the memory: a verdict lives at most the cache life ({cache_ttl} s) or the token's
life, and the cache holds at most {SERVER_CACHE_CAPACITY:,} of them (the server's
`CACHE_CAPACITY`); `bench/scale.sh` part (b) measures the bytes per entry up to that count.

## Every run

<details><summary>{len(runs)} wrk runs, in the order they ran</summary>

{every}

</details>

## How cost grows
"""
        h.write_doc_section(args.output, main=doc)
        h.log(f"wrote {args.output.relative_to(h.ROOT) if args.output.is_relative_to(h.ROOT) else args.output}")
    return 3 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""How cost grows (issue 13, deliverable 4): `bench/scale.sh [--quick] [options]`.

(a) resource list latency with 1k and 100k rows owned by one owner, on SQLite and
    PostgreSQL: the first page (`?limit=100`), and a page near the end by keyset
    (`?limit=10&after=ID`) and by offset (`?limit=10&offset=DEPTH`); and the query plan of
    the list query on both databases.
(b) the introspection cache with 100k live tokens: RSS per cached entry.
(c) greeting v1 with --workers 1 and 2 (and the floor alike).
(d) PostgreSQL (issue 24): list (keyset, near the end) and get at 10, 100k and 1M rows,
    creates with 1 and 32 clients, with the connection pool at 8 and at 32; the plans.

Writes the "How cost grows" part of docs/BENCHMARKS.md (bench/run.sh writes the rest).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import shlex
import subprocess
import sys
import time
from pathlib import Path

import harness as h

# The query of `db::resources::list`, as Diesel writes it.
LIST_SQL = (
    "SELECT resources.id, resources.owner_id, resources.name, resources.created_at, resources.updated_at, "
    "owners.id, owners.subject, owners.client_id, owners.name "
    "FROM resources INNER JOIN owners ON owners.id = resources.owner_id "
    "WHERE resources.id > {after} ORDER BY resources.id ASC LIMIT {limit} OFFSET {offset}"
)
OWNER = "bench-scale-owner"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/scale.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 1k/10k rows, 5k tokens, 2 s runs, 1 round; writes no doc")
    p.add_argument("--parts", default="abcd", help="which parts to run: any of a, b, c, d (default abcd)")
    p.add_argument("--pg-sizes", default="10,100000,1000000", help="row counts for (d) (default 10,100000,1000000)")
    p.add_argument("--pools", default="8,32", help="--db-pool-size values for (d) (default 8,32)")
    p.add_argument("--sizes", default="1000,100000", help="row counts for (a) (default 1000,100000)")
    p.add_argument("--tokens", type=int, default=100_000, help="live tokens for (b) (default 100000)")
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds for (c) (default 3)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--workers", type=int, default=2, help="--workers of the servers in (a) and (b) (default 2)")
    p.add_argument("--postgres-url", default=h.DEFAULT_POSTGRES_URL, help=f"PostgreSQL for (a) (default {h.DEFAULT_POSTGRES_URL})")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--output", type=Path, default=h.ROOT / "docs" / "BENCHMARKS.md")
    p.add_argument("--no-doc", action="store_true", help="print only")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.sizes, a.tokens, a.duration, a.rounds, a.no_doc = "1000,10000", 5000, 2, 1, True
        a.pg_sizes = "10,10000"
    a.sizes = [int(x) for x in a.sizes.split(",")]
    a.pg_sizes = [int(x) for x in a.pg_sizes.split(",")]
    a.pools = [int(x) for x in a.pools.split(",")]
    return a


def main(argv: list[str]) -> int:
    return h.main(run, parse_args(argv))


def run(args, procs: h.Procs, tmp: Path, stack: contextlib.ExitStack) -> int:
    command = "bench/scale.sh" + ("" if not sys.argv[1:] else " " + shlex.join(sys.argv[1:]))
    started = time.monotonic()
    use_pg = ("a" in args.parts or "d" in args.parts) and not args.no_postgres
    h.ensure_tools({"wrk": "wrk", "sqlite3": "sqlite3", **({"psql": "postgresql-client"} if use_pg else {})})
    if use_pg and not h.postgres_reachable(args.postgres_url):
        h.log(f"PostgreSQL at {args.postgres_url} does not answer: SQLite only")
        use_pg = False
    bins = h.build_release(["mrmat-api", "mrmat-api-floor"], tmp)
    box = h.machine()
    commit = h.git_describe()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    idp = h.start_idp(procs, tmp) if any(p in args.parts for p in "abd") else None
    sections, runs = [], []
    if "a" in args.parts:
        sections.append(part_a(args, procs, tmp, stack, bins["mrmat-api"], idp, use_pg, runs))
    if "b" in args.parts:
        sections.append(part_b(args, procs, tmp, bins["mrmat-api"], idp))
    if "c" in args.parts:
        sections.append(part_c(args, procs, tmp, bins, runs))
    if "d" in args.parts and use_pg:
        sections.append(part_d(args, procs, tmp, stack, bins["mrmat-api"], idp, runs))
    others = [r.cpu_other for r in runs]
    other_med, other_max = h.median(others), max(others, default=0)
    load_note = (
        f"**Taken under load**: other processes used a median {other_med:.0f}% of one CPU (max "
        f"{other_max:.0f}%) during the wrk runs: absolute figures are context only, comparisons within a table approximate."
        if other_med > 15
        else f"Other processes used a median {other_med:.0f}% of one CPU (max {other_max:.0f}%) during the wrk runs."
    )
    text = f"""_Generated by `{command}` on {when}, commit `{commit}`; {box['cpu']},
{box['cores']} cores, load average before {box['load']}; {(time.monotonic() - started) / 60:.1f} min.
Regenerate with `bench/scale.sh` (it rewrites only this part)._

{load_note}

""" + "\n\n".join(sections)
    print()
    print(text)
    if not args.no_doc:
        h.write_doc_section(args.output, scale=text)
        h.log(f"wrote the scale part of {args.output}")
    return 0


# --- (a) list latency and query plans ------------------------------------------------------


def seed_sql_sqlite(n: int) -> str:
    now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    return f"""
.timeout 20000
BEGIN;
INSERT INTO owners (subject, client_id, name, created_at) VALUES ('{OWNER}', 'bench', 'bench scale owner', {now});
INSERT INTO resources (owner_id, name, created_at, updated_at)
  WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
  SELECT (SELECT id FROM owners WHERE subject = '{OWNER}'), 'scale-' || i, {now}, {now} FROM s;
COMMIT;
"""


def seed_sql_pg(n: int) -> str:
    return f"""
INSERT INTO owners (subject, client_id, name, created_at) VALUES ('{OWNER}', 'bench', 'bench scale owner', now());
INSERT INTO resources (owner_id, name, created_at, updated_at)
  SELECT o.id, 'scale-' || g, now(), now() FROM generate_series(1, {n}) g, owners o WHERE o.subject = '{OWNER}';
ANALYZE owners;
ANALYZE resources;
"""


def sqlite3(path: Path, sql: str) -> str:
    r = subprocess.run(["sqlite3", "-batch", str(path)], input=sql, capture_output=True, text=True)
    if r.returncode != 0:
        raise h.BenchError(f"sqlite3: {r.stderr.strip()}")
    return r.stdout


def part_a(args, procs, tmp, stack, server_bin, idp, use_pg, runs) -> str:
    dbs = ["SQLite"] + (["PostgreSQL"] if use_pg else [])
    token = idp.token()
    rows, plans = [], []
    for dbname in dbs:
        for n in args.sizes:
            name = f"list-{dbname.lower()}-{n}"
            if dbname == "SQLite":
                path = tmp / name / "mrmat-api.sqlite"
                url = f"sqlite://{path}"
                (tmp / name).mkdir(parents=True, exist_ok=True)
            else:
                pg = stack.enter_context(h.PgDatabase(args.postgres_url, f"list{n}"))
                url = pg.url
            s = h.start_server(procs, server_bin, tmp, name, db=url, idp=idp, workers=args.workers)
            t0 = time.monotonic()
            h.log(f"seeding {n:,} rows into {dbname}")
            if dbname == "SQLite":
                sqlite3(path, seed_sql_sqlite(n))
                run_sql = lambda sql: sqlite3(path, sql)  # noqa: E731
            else:
                h.psql(url, seed_sql_pg(n))
                run_sql = lambda sql: h.psql(url, sql)  # noqa: E731
            seed_s = time.monotonic() - t0
            depth = max(0, n - 100)
            after = int(run_sql(f"SELECT id FROM resources ORDER BY id LIMIT 1 OFFSET {depth - 1};").strip() or 0) if depth else 0
            auth = {"Authorization": f"Bearer {token}"}
            status, body = h.http_json("GET", f"{s.base}/api/resource/v1/?limit=10&after={after}", headers=auth)
            if status != 200 or len(body["resources"]) != 10:
                raise h.BenchError(f"{name}: the keyset page answered {status} {str(body)[:300]}")
            status, body2 = h.http_json("GET", f"{s.base}/api/resource/v1/?limit=10&offset={depth}", headers=auth)
            if status != 200 or body2["resources"] != body["resources"]:
                raise h.BenchError(f"{name}: offset {depth} and after {after} give different pages")
            if n == max(args.sizes):
                plans.append(plan(dbname, n, depth, after, run_sql))
            queries = [
                ("first page, `?limit=100`", "/api/resource/v1/?limit=100"),
                (f"near the end by keyset, `?limit=10&after={after}`", f"/api/resource/v1/?limit=10&after={after}"),
                (f"near the end by offset, `?limit=10&offset={depth}`", f"/api/resource/v1/?limit=10&offset={depth}"),
            ]
            for label, q in queries:
                for c in (1, 32):
                    r = h.wrk(
                        s.pid,
                        s.base + q,
                        target=f"{name}:{q}",
                        conc=c,
                        round_no=1,
                        duration=args.duration,
                        threads=args.threads,
                        headers=[f"Authorization: Bearer {token}"],
                        out_dir=tmp,
                    )
                    runs.append(r)
                    rows.append(
                        [
                            dbname,
                            f"{n:,}",
                            label,
                            str(c),
                            h.thousands(r.rps),
                            f"{r.p50_ms:.2f}",
                            f"{r.p99_ms:.2f}",
                            str(r.non2xx + r.errors),
                            f"{r.cpu_other:.0f}",
                        ]
                    )
            h.log(f"  seeded in {seed_s:.1f} s")
            procs.stop(s.proc)
    table = h.md_table(["database", "rows", "request", "c", "req/s", "p50 ms", "p99 ms", "non-2xx", "other CPU %"], rows)
    return f"""### (a) Resource list with many rows

One owner with N resources, seeded with SQL (`sqlite3` / `psql`) after the server made the
schema; {args.duration:g} s per wrk run, one run each (not interleaved: compare rows of one size
and database). The keyset and offset pages are the same ten rows ({max(args.sizes) - 100:,} deep at the largest size);
the server answers both with one query of the form below, `after` and `offset` filled in.

{table}

The list query (`db::resources::list`):

```sql
{LIST_SQL.format(after="$after", limit="$limit + 1", offset="$offset")}
```

""" + "\n\n".join(plans)


def plan(dbname: str, n: int, depth: int, after: int, run_sql) -> str:
    keyset = LIST_SQL.format(after=after, limit=11, offset=0)
    offset = LIST_SQL.format(after=0, limit=11, offset=depth)
    first = LIST_SQL.format(after=0, limit=101, offset=0)
    if dbname == "SQLite":
        out = []
        for label, q in (("first page", first), ("keyset", keyset), ("offset", offset)):
            out.append(f"-- {label}\n" + run_sql(f"EXPLAIN QUERY PLAN {q};").strip())
        return f"SQLite, {n:,} rows, `EXPLAIN QUERY PLAN`, no `ANALYZE` (the server never runs it); `INTEGER PRIMARY KEY` is the rowid, so a search on it walks the primary-key B-tree:\n\n```\n" + "\n\n".join(out) + "\n```"
    out = []
    for label, q in (("first page", first), ("keyset", keyset), ("offset", offset)):
        out.append(f"-- {label}\n" + run_sql(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING ON, SUMMARY ON) {q};").strip())
    return f"PostgreSQL, {n:,} rows, `EXPLAIN (ANALYZE, COSTS OFF)`:\n\n```\n" + "\n\n".join(out) + "\n```"


# --- (b) the introspection cache with many tokens ------------------------------------------


def part_b(args, procs, tmp, server_bin, idp) -> str:
    import json
    import urllib.parse

    n = args.tokens
    # The default cache life (30 s) is shorter than minting and using 100k tokens takes;
    # a longer one keeps every entry alive until the RSS is read.
    s = h.start_server(procs, server_bin, tmp, "tokens", idp=idp, workers=args.workers, extra=["--oidc-cache-ttl", "3600"])
    idp_port = urllib.parse.urlsplit(idp.issuer).port
    mint_pool, api_pool = h.Pool(idp_port), h.Pool(s.port)
    basic = h.basic(h.RW_CLIENT)

    def mint(_i: int) -> str:
        status, body = mint_pool.call(
            "POST", "/token", b"grant_type=client_credentials",
            {"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200:
            raise h.BenchError(f"minting a token answered {status}: {body[:200]!r}")
        return json.loads(body)["access_token"]

    def use(token: str) -> int:
        status, _ = api_pool.call("GET", "/api/greeting/v3/", None, {"Authorization": f"Bearer {token}"})
        return status

    h.log(f"minting {n:,} client-credentials tokens")
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        tokens = list(ex.map(mint, range(n), chunksize=256))
    mint_s = time.monotonic() - t0
    if len(set(tokens)) != n:
        raise h.BenchError("the provider minted duplicate tokens")
    h.log(f"  {n / mint_s:,.0f} tokens/s")

    warm = min(1000, n // 10)
    checkpoints = sorted({warm, n // 10, n // 2, n} - {0})
    h.request("POST", idp.issuer + "/__stats/reset")
    rss = {0: h.proc_status(s.pid, "VmRSS")}
    done, use_s, statuses = 0, 0.0, {}
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        for cp in checkpoints:
            t0 = time.monotonic()
            for st in ex.map(use, tokens[done:cp], chunksize=64):
                statuses[st] = statuses.get(st, 0) + 1
            use_s += time.monotonic() - t0
            done = cp
            time.sleep(1)  # let the cache's housekeeping settle before reading RSS
            rss[cp] = h.proc_status(s.pid, "VmRSS")
            h.log(f"  {cp:,} tokens used once: RSS {h.mib(rss[cp])} MiB")
        introspections = idp.introspections()
        # Every token again: a cache that kept them all makes no new introspection.
        sample = tokens[:: max(1, n // 1000)]
        for st in ex.map(use, sample, chunksize=64):
            statuses[st] = statuses.get(st, 0) + 1
    again = idp.introspections() - introspections
    if set(statuses) != {200}:
        raise h.BenchError(f"greeting v3 with fresh tokens answered {statuses}")
    hwm = h.proc_status(s.pid, "VmHWM")
    procs.stop(s.proc)
    per_entry = (rss[n] - rss[warm]) * 1024 / (n - warm) if n > warm else 0
    rows = [[f"{cp:,}", h.mib(rss[cp]), f"{(rss[cp] - rss[0]) * 1024 / cp:,.0f}" if cp else "-"] for cp in [0, *checkpoints]]
    return f"""### (b) The introspection cache with {n:,} live tokens

{n:,} distinct client-credentials tokens of `mrmat-api-test-rw` (minted at {n / mint_s:,.0f}/s by 8
Python threads), each sent once to `GET /api/greeting/v3/` (8 threads, keep-alive), on
SQLite, `--workers {args.workers}`, and `--oidc-cache-ttl 3600` (the default 30 s life is shorter
than the run, and an expired entry would not show its memory). Uncached, the server and
the provider together answered {done / use_s:,.0f} requests/s (one introspection each).

| tokens cached | server RSS MiB | bytes per token, from the empty cache |
|---:|---:|---:|
""" + "\n".join("| " + " | ".join(r) + " |" for r in rows) + f"""

**{per_entry:,.0f} bytes per cached entry** (RSS growth from {warm:,} to {n:,} tokens, so that
buffers and connection pools that grow with the first requests do not count); VmHWM
{h.mib(hwm)} MiB. Introspections: {introspections:,} for {n:,} tokens used once (want {n:,});
then {len(sample):,} of them used again: {again} more introspections (want 0: the cache held
them all).
"""


# --- (c) workers -------------------------------------------------------------------------


def part_c(args, procs, tmp, bins, runs) -> str:
    targets = []
    for w in (1, 2):
        targets.append((f"greeting v1, --workers {w}", h.start_server(procs, bins["mrmat-api"], tmp, f"w{w}", workers=w), "/api/greeting/v1/"))
    for w in (1, 2):
        targets.append((f"floor, --workers {w}", h.start_floor(procs, bins["mrmat-api-floor"], tmp, f"floor-w{w}", w), h.FLOOR_PATH))
    mine = []
    concs = (32, 256)
    for rnd in range(1, args.rounds + 1):
        for label, s, path in targets:
            for c in concs:
                r = h.wrk(s.pid, s.base + path, target=label, conc=c, round_no=rnd, duration=args.duration, threads=args.threads, out_dir=tmp)
                mine.append(r)
    for _, s, _ in targets:
        procs.stop(s.proc)
    runs += mine

    def med(label, c, attr):
        return h.median(getattr(r, attr) for r in mine if r.target == label and r.conc == c)

    rows = []
    for label, _, _ in targets:
        for c in concs:
            one = label.replace("--workers 2", "--workers 1")
            gain = f"{med(label, c, 'rps') / med(one, c, 'rps'):.2f}" if label != one else "1.00"
            rows.append(
                [label, str(c), h.thousands(med(label, c, "rps")), f"{med(label, c, 'p50_ms'):.2f}", f"{med(label, c, 'p99_ms'):.2f}", gain, f"{med(label, c, 'cpu_other'):.0f}"]
            )
    table = h.md_table(["server", "c", "req/s", "p50 ms", "p99 ms", "× 1 worker", "other CPU %"], rows)
    return f"""### (c) One worker and two

Greeting v1 (SQLite, no OIDC, access log on) and the floor, `wrk -t{args.threads}`, medians of
{args.rounds} interleaved rounds of {args.duration:g} s. On 2 cores wrk competes with the
workers for the same CPUs, so a second worker cannot double the throughput.

{table}
"""


# --- (d) PostgreSQL: rows, clients, pool ----------------------------------------------------

GET_SQL = (
    "SELECT resources.id, resources.owner_id, resources.name, resources.created_at, resources.updated_at, "
    "owners.id, owners.subject, owners.client_id, owners.name "
    "FROM resources INNER JOIN owners ON owners.id = resources.owner_id WHERE resources.id = {id} LIMIT 1"
)


def part_d(args, procs, tmp, stack, server_bin, idp, runs) -> str:
    token = idp.token()
    auth = [f"Authorization: Bearer {token}"]
    pools = args.pools if h.has_option(server_bin, "--db-pool-size") else [None]
    rows, plans = [], []
    for n in args.pg_sizes:
        pg = stack.enter_context(h.PgDatabase(args.postgres_url, f"grow{n}"))
        # The schema first (the server migrates), then the rows, then the servers.
        s = h.start_server(procs, server_bin, tmp, f"pg-{n}-schema", db=pg.url, idp=idp, workers=args.workers)
        procs.stop(s.proc)
        t0 = time.monotonic()
        h.log(f"seeding {n:,} rows into PostgreSQL")
        h.psql(pg.url, seed_sql_pg(n))
        seed_s = time.monotonic() - t0
        last = int(h.psql(pg.url, "SELECT max(id) FROM resources").strip())
        # The id before the last ten (0 when there are no more than ten).
        after = int(h.psql(pg.url, "SELECT COALESCE((SELECT id FROM resources ORDER BY id DESC LIMIT 1 OFFSET 10), 0)").strip())
        keyset = f"/api/resource/v1/?limit=10&after={after}"
        for pool in pools:
            extra = ["--db-pool-size", str(pool)] if pool else []
            label_pool = str(pool) if pool else "default"
            s = h.start_server(procs, server_bin, tmp, f"pg-{n}-p{label_pool}", db=pg.url, idp=idp, workers=args.workers, extra=extra)
            status, body = h.http_json("GET", s.base + keyset, headers={"Authorization": f"Bearer {token}"})
            if status != 200 or len(body["resources"]) != 10:
                raise h.BenchError(f"PostgreSQL {n:,} rows: the keyset page answered {status} {str(body)[:300]}")
            work = [
                (f"list near the end by keyset, `{keyset}`", keyset, (1, 32), None),
                (f"get, `/api/resource/v1/{last}`", f"/api/resource/v1/{last}", (1, 32), None),
                ("create", "/api/resource/v1/", (1, 32), "create.lua"),
            ]
            for label, path, concs, script in work:
                for c in concs:
                    r = h.wrk(
                        s.pid,
                        s.base + path,
                        target=f"pg{n}-p{label_pool}:{path}",
                        conc=c,
                        round_no=1,
                        duration=args.duration,
                        threads=args.threads,
                        headers=auth,
                        script=script or "report.lua",
                        script_args=[f"grow{n}p{label_pool}c{c}"] if script else None,
                        out_dir=tmp,
                    )
                    runs.append(r)
                    rate = r.created_per_s if script else r.rps
                    rows.append(
                        [
                            f"{n:,}",
                            label_pool,
                            label,
                            str(c),
                            h.thousands(rate),
                            f"{r.p50_ms:.2f}",
                            f"{r.p99_ms:.2f}",
                            str(r.non2xx + r.errors),
                            f"{r.cpu_server:.0f} / {r.cpu_other:.0f}",
                        ]
                    )
            procs.stop(s.proc)
        h.log(f"  seeded in {seed_s:.1f} s")
        plans.append(
            f"-- {n:,} rows: list, keyset\n"
            + h.psql(pg.url, f"EXPLAIN (ANALYZE, COSTS OFF, TIMING ON, SUMMARY ON) {LIST_SQL.format(after=after, limit=11, offset=0)}").strip()
            + f"\n\n-- {n:,} rows: get\n"
            + h.psql(pg.url, f"EXPLAIN (ANALYZE, COSTS OFF, TIMING ON, SUMMARY ON) {GET_SQL.format(id=last)}").strip()
        )
    pool_note = (
        "`--db-pool-size` " + " and ".join(str(p) for p in pools)
        if pools != [None]
        else "the default pool (this server has no `--db-pool-size`)"
    )
    table = h.md_table(["rows", "pool", "request", "c", "req/s (creates/s)", "p50 ms", "p99 ms", "non-2xx", "CPU % server / other"], rows)
    return f"""### (d) PostgreSQL: rows, clients and pool (issue 24)

One owner with N resources (seeded with SQL after the server made the schema; `ANALYZE`d),
the server with {pool_note}, `--workers {args.workers}`; {args.duration:g} s per wrk run, one run each.
The list asks for the last ten rows by keyset, the get for the last row; creates add rows
(201 answers per second). "other" CPU is mostly the database's backends.

{table}

Plans of the list and the get, at each size (`EXPLAIN (ANALYZE, COSTS OFF)`):

```
""" + "\n\n".join(plans) + """
```
"""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

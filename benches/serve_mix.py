"""The dashboard mix of benches/serve.rs: CLIENTS clients, each running the mix's statements in
turn for SECONDS, through `hspq serve` (asyncpg, one connection each) or on in-process DuckDB
(the duckdb module, one connection each on a thread); and the client that streams a whole view.

Usage:
  serve_mix.py serve HOST PORT PASSWORD CLIENTS SECONDS MIX_JSON
  serve_mix.py inprocess VIEWS_SQL MEMORY_LIMIT CLIENTS SECONDS MIX_JSON
  serve_mix.py stream HOST PORT PASSWORD SQL

MIX_JSON: [{"name": ..., "sql": ..., "params": [[...], ...]}, ...]; a client takes the
statements in turn (starting at its own), each time with the next of its parameter lists.
Prints one JSON object: statements run, per second, p50/p95 latency in ms, by statement; the
stream prints the rows it read and the seconds it took.
"""

import asyncio
import json
import resource
import sys
import threading
import time


def summary(latencies, seconds):
    every = sorted(l for ls in latencies.values() for l in ls)

    def pct(values, q):
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1) if values else None

    return {
        "statements": len(every),
        "per_second": round(len(every) / seconds, 2),
        "p50_ms": pct(every, 0.5),
        "p95_ms": pct(every, 0.95),
        "by_statement": {
            name: {"n": len(ls), "p50_ms": pct(sorted(ls), 0.5), "p95_ms": pct(sorted(ls), 0.95)}
            for name, ls in latencies.items()
        },
        "client_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


async def serve(host, port, password, clients, seconds, mix):
    import asyncpg

    latencies = {m["name"]: [] for m in mix}
    conns = [
        await asyncpg.connect(host=host, port=int(port), user="hspq", password=password,
                              database="hspq", command_timeout=600)
        for _ in range(clients)
    ]
    # Each connection's session (its views and catalog) opens at its first statement: opened
    # here, before the clock, as the in-process side's views are made before it; timed apart.
    opening = time.monotonic()
    await asyncio.gather(*(c.fetch("select 1") for c in conns))
    sessions_open_s = round(time.monotonic() - opening, 2)
    deadline = time.monotonic() + seconds

    async def client(i, conn):
        turn = i
        while time.monotonic() < deadline:
            m = mix[turn % len(mix)]
            params = m["params"][turn % len(m["params"])] if m["params"] else []
            started = time.monotonic()
            await conn.fetch(m["sql"], *params)
            latencies[m["name"]].append(time.monotonic() - started)
            turn += 1

    started = time.monotonic()
    await asyncio.gather(*(client(i, c) for i, c in enumerate(conns)))
    took = time.monotonic() - started
    for c in conns:
        await c.close()
    out = summary(latencies, took)
    out["sessions_open_s"] = sessions_open_s
    return out


def inprocess(views_sql, memory_limit, clients, seconds, mix):
    import duckdb

    db = duckdb.connect()
    db.execute(f"SET memory_limit = '{memory_limit}'")
    db.execute(open(views_sql).read())
    latencies = {m["name"]: [] for m in mix}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(i):
        conn = db.cursor()
        turn = i
        while time.monotonic() < deadline:
            m = mix[turn % len(mix)]
            params = m["params"][turn % len(m["params"])] if m["params"] else []
            started = time.monotonic()
            conn.execute(m["sql"], params).fetchall()
            took = time.monotonic() - started
            with lock:
                latencies[m["name"]].append(took)
            turn += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary(latencies, time.monotonic() - started)


async def stream(host, port, password, sql):
    import asyncpg

    conn = await asyncpg.connect(host=host, port=int(port), user="hspq", password=password,
                                 database="hspq", command_timeout=3600)
    started = time.monotonic()
    rows = 0
    async with conn.transaction():
        # 10,000 rows an Execute, as pgjdbc's setFetchSize(10000).
        async for _ in conn.cursor(sql, prefetch=10000):
            rows += 1
    await conn.close()
    return {"rows": rows, "seconds": round(time.monotonic() - started, 1)}


def main():
    mode, *args = sys.argv[1:]
    if mode == "serve":
        host, port, password, clients, seconds, mix = args
        out = asyncio.run(serve(host, port, password, int(clients), float(seconds),
                                json.load(open(mix))))
    elif mode == "inprocess":
        views, memory, clients, seconds, mix = args
        out = inprocess(views, memory, int(clients), float(seconds), json.load(open(mix)))
    else:
        host, port, password, sql = args
        out = asyncio.run(stream(host, port, password, sql))
    print(json.dumps(out))


main()

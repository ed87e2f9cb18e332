"""asyncpg against `hspq serve`: typed parameters, every view decoded in binary, a time-out that
cancels, a failed block, a cursor inside a transaction, and a pool of 30 opened at once.

Usage: asyncpg_check.py HOST PORT PASSWORD VIEW...

Prints one JSON object: {"params": {...}, "views": {view: rows}, "timeout": ..., ...} for the
Rust test (tests/serve_drivers.rs) to compare with `hspq sql`.
"""

import asyncio
import datetime
import json
import sys

import asyncpg


async def main():
    host, port, password, *views = sys.argv[1:]
    conn = await asyncpg.connect(
        host=host, port=int(port), user="hspq", password=password, database="hspq"
    )
    out = {}
    # asyncpg encodes each argument by the type the server describes: int8, date, timestamptz.
    out["params"] = {
        "year": await conn.fetchval("select count(*) from billing where year = $1", 2025),
        "date": await conn.fetchval(
            "select count(*) from daily_usage where date >= $1", datetime.date(2025, 6, 1)
        ),
        "timestamptz": await conn.fetchval(
            "select count(*) from billing where ingested_at < $1",
            datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1),
        ),
        "text_array": await conn.fetchval(
            "select count(*) from billing where list_contains($1, product)", ["SNS", "PAT"]
        ),
        "infinity": str(await conn.fetchval("select $1::date", datetime.date.max)),
    }
    # A value the client cannot encode fails in the client; the connection goes on.
    try:
        await conn.fetch("select count(*) from billing where year = $1", "not a year")
        out["bad_argument"] = "accepted"
    except asyncpg.DataError:
        out["bad_argument"] = "refused"
    out["after_bad_argument"] = await conn.fetchval("select 41 + 1")
    # Every view whole, in binary (asyncpg asks binary for every type it knows).
    out["views"] = {v: len(await conn.fetch(f"select * from {v}")) for v in views}
    # A time-out cancels the statement on the server; the connection goes on.
    try:
        await conn.fetch(
            "select count(*) from range(100000000000) t(a), range(10) u(b) where a % 7 = b",
            timeout=1.0,
        )
        out["timeout"] = "finished"
    except asyncio.TimeoutError:
        out["timeout"] = "cancelled"
    out["after_timeout"] = await conn.fetchval("select 42")
    # A block: its status is what asyncpg reads to allow a cursor; an error fails the block.
    async with conn.transaction():
        out["cursor_rows"] = len(
            [r async for r in conn.cursor("select * from daily_usage", prefetch=100)]
        )
    try:
        async with conn.transaction():
            await conn.fetch("select * from no_such_view")
    except asyncpg.PostgresError as e:
        out["failed_block"] = type(e).__name__
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.fetch("select * from no_such_view")
    except asyncpg.PostgresError:
        pass
    try:
        await conn.fetchval("select 1")
        out["in_failed_block"] = "ran"
    except asyncpg.PostgresError as e:
        out["in_failed_block"] = e.sqlstate
    await tx.rollback()
    out["after_rollback"] = await conn.fetchval("select 7")
    # A nested block (a savepoint) that fails leaves the outer one going.
    async with conn.transaction():
        try:
            async with conn.transaction():
                await conn.fetch("select * from no_such_view")
        except asyncpg.PostgresError:
            pass
        out["after_savepoint"] = await conn.fetchval("select 8")
    # A timestamp beyond PostgreSQL's range, in binary: the server sends its last value.
    try:
        await conn.fetchval("select '290309-12-22 (BC) 00:00:00'::timestamp")
        out["far_timestamp"] = "decoded"
    except Exception as e:
        out["far_timestamp"] = type(e).__name__
    out["after_far_timestamp"] = await conn.fetchval("select 9")
    # Lists of numbers, which asyncpg introspects (its query binds `$1::oid[]` and reads oid[]
    # columns: described as int8[] they sent it round in circles), each within a time limit.
    lists = {}
    for name, sql in [
        ("int", "select [1, 2, 3]"),
        ("bigint", "select [10000000000, -1]::bigint[]"),
        ("double", "select [1.5, 2.5]::double[]"),
        ("date", "select [date '2026-01-31']"),
        ("oid", "select [23, 20]::oid[] from pg_catalog.pg_type limit 1"),
    ]:
        try:
            lists[name] = await asyncio.wait_for(conn.fetchval(sql), 20)
        except Exception as e:
            lists[name] = f"{type(e).__name__}: {e}"
    out["lists"] = lists
    # A parameter that is a list of numbers, encoded by its described type.
    out["int_list_param"] = await asyncio.wait_for(
        conn.fetchval("select list_sum($1::bigint[])::bigint", [1, 2, 39]), 20
    )
    # A pool that opens its connections all at once from this one host.
    try:
        pool = await asyncpg.create_pool(
            host=host, port=int(port), user="hspq", password=password, database="hspq",
            min_size=30, max_size=30,
        )
        async with pool:
            answers = await asyncio.gather(*(pool.fetchval("select $1::int", i) for i in range(30)))
        out["pool"] = sum(answers)
    except Exception as e:
        out["pool"] = f"{type(e).__name__}: {e}"
    # One client too many is told so, and the server says nothing after its FATAL error
    # (asyncpg reports anything more as a protocol violation through the loop's handler).
    violations = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, context: violations.append(context.get("message"))
    )
    more = [
        await asyncpg.connect(host=host, port=int(port), user="hspq", password=password,
                              database="hspq")
        for _ in range(31)
    ]
    try:
        extra = await asyncpg.connect(host=host, port=int(port), user="hspq",
                                      password=password, database="hspq")
        await extra.close()
        out["one_too_many"] = "connected"
    except asyncpg.TooManyConnectionsError:
        out["one_too_many"] = "refused"
    await asyncio.sleep(0.5)
    out["protocol_violations"] = violations
    for c in more:
        await c.close()
    await conn.close()
    print(json.dumps(out, default=str))


asyncio.run(main())

"""Server-side cursors and row-limited portals against `hspq serve`, as the drivers that read
through them use them: psycopg2's named cursors (simple protocol), psycopg 3's server cursors
(extended protocol; it describes the cursor as a portal), asyncpg's cursors (Execute with a row
limit), and Tableau's `DECLARE ... WITH HOLD` / `FETCH 2048`.

Usage: cursors.py HOST PORT PASSWORD TIMEOUT_SECONDS

Prints one JSON object for the Rust test (tests/serve_drivers.rs) to check.
"""

import asyncio
import json
import sys
import time

import asyncpg
import psycopg
import psycopg2
import psycopg2.errors

# A result nobody could build whole: read only through a cursor that streams.
ENDLESS = "select x from range(1000000000000) t(x)"
# DuckDB works long on it before its one row.
SLOW = "select count(*) from range(100000000000) t(a), range(10) u(b) where a % 7 = b"


def sqlstate(f):
    try:
        f()
        return "ran"
    except (psycopg2.Error, psycopg.Error) as e:
        return e.pgcode if isinstance(e, psycopg2.Error) else e.sqlstate


def with_psycopg2(host, port, password, out):
    conn = psycopg2.connect(host=host, port=port, user="hspq", password=password, dbname="hspq")
    # A whole view through a named cursor, 2,000 rows a FETCH (its default itersize).
    cur = conn.cursor(name="whole_view")
    cur.execute("select * from daily_usage where report_type = %s", ("mssp",))
    out["psycopg2_whole"] = sum(1 for _ in cur)
    cur.close()
    # The first rows of an endless result, with other statements between its fetches.
    cur = conn.cursor(name="endless")
    cur.execute(ENDLESS)
    first = cur.fetchmany(3)
    other = conn.cursor()
    other.execute("select count(*) from billing")
    between = other.fetchone()[0]
    cur.scroll(10)  # MOVE 10
    out["psycopg2_endless"] = [r[0] for r in first + cur.fetchmany(2)]
    out["psycopg2_between"] = between
    conn.commit()
    # Without WITH HOLD a cursor ends with its block.
    out["psycopg2_after_commit"] = sqlstate(lambda: other.execute('fetch 1 from "endless"'))
    conn.rollback()
    # WITH HOLD outlives the block.
    held = conn.cursor(name="held", withhold=True)
    held.execute("select x from range(10) t(x)")
    conn.commit()
    out["psycopg2_held"] = [r[0] for r in held.fetchall()]
    held.close()
    conn.commit()
    # Tableau's way: one message holding a DECLARE and FETCHes; the last one's rows come back.
    conn.autocommit = True
    tab = conn.cursor()
    tab.execute(
        'declare "SQL_CUR0001" cursor with hold for select x from range(5000) t(x); '
        'fetch 2048 in "SQL_CUR0001"; fetch 2048 in "SQL_CUR0001"'
    )
    second = [r[0] for r in tab.fetchall()]
    tab.execute('fetch 2048 in "SQL_CUR0001"')
    third = [r[0] for r in tab.fetchall()]
    out["tableau"] = [len(second), second[0], len(third), third[-1]]
    tab.execute('close "SQL_CUR0001"')
    out["closed"] = sqlstate(lambda: tab.execute('fetch 1 in "SQL_CUR0001"'))
    out["outside_block"] = sqlstate(lambda: tab.execute("declare c cursor for select 1"))
    out["scroll"] = sqlstate(lambda: tab.execute("declare c scroll cursor with hold for select 1"))
    out["writes"] = sqlstate(
        lambda: tab.execute("declare c cursor with hold for copy (select 1) to 'x.csv'")
    )
    tab.execute("declare back cursor with hold for select 1")
    out["backward"] = sqlstate(lambda: tab.execute("fetch backward 1 from back"))
    # A cursor's DuckDB time counts against --query-timeout (its DECLARE starts the query: an
    # aggregate's work is done there).
    def slow():
        tab.execute(f"declare slow cursor with hold for {SLOW}")
        tab.execute("fetch 1 from slow")

    out["slow"] = sqlstate(slow)
    out["after_slow"] = sqlstate(lambda: tab.execute("select 1"))
    # A cursor whose query fails half-way says so, then refuses to look finished.
    tab.execute(
        "declare boom cursor with hold for "
        "select x, case when x = 5000 then error('boom at 5000') end as e from range(10000) t(x)"
    )
    tab.execute("fetch 2048 from boom")
    first = len(tab.fetchall())
    try:
        tab.execute("fetch 4096 from boom")
        failed = "ran"
    except psycopg2.Error as e:
        failed = e.pgcode
        # What the server said, for a failure other than the one expected.
        out["failing_cursor_message"] = e.pgerror
    out["failing_cursor"] = [first, failed, sqlstate(lambda: tab.execute("fetch 5 from boom"))]
    tab.execute("close boom")
    # A held cursor declared in a block that rolls back goes with it, as in PostgreSQL; so does
    # one declared in a message that fails.
    tab.execute("begin")
    tab.execute("declare rolled cursor with hold for select 1")
    tab.execute("rollback")
    out["rolled_back"] = sqlstate(lambda: tab.execute("fetch 1 from rolled"))
    out["failed_message"] = sqlstate(
        lambda: tab.execute("declare lost cursor with hold for select 1; select * from nowhere")
    )
    out["after_failed_message"] = sqlstate(lambda: tab.execute("fetch 1 from lost"))
    # 64 results open at most; a closed one's place is free at once. (In a block: cursors
    # without WITH HOLD never close for being left unread.)
    tab.execute("begin")
    for i in range(64):
        tab.execute(f"declare c{i} cursor for select * from billing")
    reopened = 0
    for _ in range(5):
        tab.execute("close c0")
        tab.execute("declare c0 cursor for select * from billing")
        reopened += 1
    out["reopened"] = reopened
    out["sixty_fifth"] = sqlstate(lambda: tab.execute("declare c64 cursor for select 1"))
    tab.execute("rollback")
    tab.execute("close all")
    conn.close()


def with_psycopg3(host, port, password, out, timeout):
    conn = psycopg.connect(
        f"host={host} port={port} user=hspq password={password} dbname=hspq"
    )
    with conn.transaction():
        with conn.cursor(name="p3") as cur:
            cur.execute("select x, x * 2 as y from range(1000000000000) t(x) where x >= %s", (5,))
            out["psycopg3_columns"] = [c.name for c in cur.description]
            rows = cur.fetchmany(3)
            cur.scroll(10)
            rows.append(cur.fetchone())
            out["psycopg3_rows"] = [list(r) for r in rows]
    with conn.cursor(name="p3_view", binary=True) as cur:
        cur.execute("select * from billing")
        out["psycopg3_binary_view"] = len(cur.fetchall())
    conn.rollback()
    # A held cursor left unread longer than --query-timeout closes.
    conn.autocommit = True
    conn.execute("declare idle cursor with hold for select 1")
    time.sleep(timeout * 2 + 1)
    out["idle_held"] = sqlstate(lambda: conn.execute("fetch 1 from idle"))
    conn.close()


async def with_asyncpg(host, port, password, out):
    conn = await asyncpg.connect(
        host=host, port=int(port), user="hspq", password=password, database="hspq"
    )
    async with conn.transaction():
        # 50 rows an Execute: three Executes of an endless portal.
        got = []
        async for r in conn.cursor(ENDLESS, prefetch=50):
            got.append(r["x"])
            if len(got) == 120:
                break
        out["asyncpg_endless"] = [len(got), got[-1]]
    await conn.close()


def main():
    host, port, password, timeout = sys.argv[1:]
    out = {}
    started = time.time()
    with_psycopg2(host, port, password, out)
    with_psycopg3(host, port, password, out, float(timeout))
    asyncio.run(with_asyncpg(host, port, password, out))
    out["seconds"] = round(time.time() - started, 1)
    print(json.dumps(out))


main()

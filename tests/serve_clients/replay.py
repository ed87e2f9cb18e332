"""Replays BI tools' introspection queries against `hspq serve`, as the tools send them.

Usage: replay.py CONNINFO FILE PROTOCOL

FILE holds statements separated by `-- next` lines, each after a `-- source:` comment saying
where it comes from (grafana.sql, metabase.sql; collected from the tools' public source).
PROTOCOL is how the tool sends them: `simple` (Grafana: one Query message, no parameters) or
`extended` (Metabase through pgjdbc: Parse/Bind/Execute; a statement "AS SENT" with $n is
bound to the values its source comment names; one whose comment says pgjdbc sends it as a
simple Query is sent so).

Every statement must succeed. Prints one JSON line per statement (source, columns, rows), for
the Rust test to check what the tools read from them; exits 1 on the first failure.
"""

import json
import re
import sys

import psycopg
from psycopg.pq import ExecStatus, Format

OK = {ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK, ExecStatus.EMPTY_QUERY}


def statements(path):
    """(source comment, SQL) pairs of a fixture file."""
    text = open(path, encoding="utf-8").read()
    for block in re.split(r"^-- next$", text, flags=re.M):
        lines = block.strip("\n").split("\n")
        sources = [i for i, l in enumerate(lines) if l.startswith("-- source:")]
        if not sources:
            continue
        at = sources[-1]
        source = lines[at]
        sql = "\n".join(lines[at + 1 :])
        yield source, sql


def parameters(source, sql):
    """The values a statement sent "AS SENT" binds, in order, as text."""
    count = len(set(re.findall(r"\$(\d+)", sql)))
    if count == 0:
        return []
    found = dict(re.findall(r"\$(\d+)=('[^']*'|-?\d+)", source))
    values = []
    for i in range(1, count + 1):
        value = found.get(str(i))
        if value is None:
            raise SystemExit(f"no value for ${i} in: {source}")
        values.append(value.strip("'").encode())
    return values


def main():
    conninfo, path, protocol = sys.argv[1:4]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        pg = conn.pgconn
        for source, sql in statements(path):
            # pgjdbc sends some statements as a simple Query even for Metabase (its source
            # comment says so): a Parse may hold only one statement.
            if protocol == "simple" or re.search(r"simple[ -](Query|protocol)", source):
                result = pg.exec_(sql.encode())
            else:
                params = parameters(source, sql)
                result = pg.exec_params(sql.encode(), params, result_format=Format.TEXT)
            if result.status not in OK:
                message = (result.error_message or b"").decode(errors="replace").strip()
                print(f"FAILED: {source}\n{sql}\n=> {message}", file=sys.stderr)
                sys.exit(1)
            columns = [
                (result.fname(i) or b"").decode() for i in range(result.nfields)
            ]
            rows = [
                [
                    None
                    if result.get_value(r, c) is None
                    else result.get_value(r, c).decode()
                    for c in range(result.nfields)
                ]
                for r in range(result.ntuples)
            ]
            print(json.dumps({"source": source, "columns": columns, "rows": rows}))


if __name__ == "__main__":
    main()

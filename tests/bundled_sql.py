"""Runs every bundled query in sql/queries/ unchanged, as a Python user would, in whichever
DuckDB this interpreter imports (tests/python.rs runs it with DuckDB 1.5.6 and 2.0.0), over
the views `hspq views --sql` printed, with the parameters bound by name; compares each result
with what hspq printed.

usage: bundled_sql.py VIEWS_SQL QUERIES_DIR EXPECTED_JSON
EXPECTED_JSON: {name: {"params": {key: text}, "csv": hspq's CSV output}}. The first three
columns of every row are compared as text (further ones may print numbers differently).
"""
import csv
import datetime
import json
import pathlib
import re
import sys

import duckdb

views_sql, queries_dir, expected_path = sys.argv[1:4]
expected = json.loads(pathlib.Path(expected_path).read_text())
con = duckdb.connect()
con.execute(pathlib.Path(views_sql).read_text())

PARAM = re.compile(r"^--\s*param:\s*(\w+)\s+(\w+)(?:\s*=\s*([^|]*?))?\s*(?:\|.*)?$")


def typed(ty, text):
    if text is None or text.upper() == "NULL":
        return None
    return {
        "INTEGER": int,
        "DOUBLE": float,
        "DATE": datetime.date.fromisoformat,
    }.get(ty, str)(text)


def text(v):
    """A value as hspq's CSV writes it."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


failures = []
for name, want in expected.items():
    sql = (pathlib.Path(queries_dir) / f"{name}.sql").read_text()
    params = {}
    for line in sql.splitlines():
        m = PARAM.match(line.strip())
        if m:
            pname, ty, default = m.groups()
            params[pname] = typed(ty.upper(), want["params"].get(pname, default))
    try:
        got = con.execute(sql, params).fetchall()
    except Exception as e:  # noqa: BLE001 - report every query's failure, then fail
        failures.append(f"{name}: {e}")
        continue
    hspq_rows = [row[:3] for row in list(csv.reader(want["csv"].splitlines()))[1:]]
    ours = [[text(v) for v in r[:3]] for r in got]
    if ours != hspq_rows:
        failures.append(
            f"{name}: {len(ours)} rows, hspq printed {len(hspq_rows)}; first differing: "
            f"{next((a, b) for a, b in zip(ours + [None] * len(hspq_rows), hspq_rows + [None] * len(ours)) if a != b)}"
        )

if failures:
    print(f"DuckDB {duckdb.__version__}:\n" + "\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"DuckDB {duckdb.__version__}: {len(expected)} bundled queries ran unchanged and agree with hspq")

"""Readers that take a whole result with `COPY ... TO STDOUT`, against `hspq serve`:
polars.read_database_uri (its default engine, connectorx, reads with binary COPY) and the ADBC
PostgreSQL driver (binary COPY after its pg_type discovery).

Usage: copy_readers.py URI VIEW...
Prints one JSON object: {"connectorx": {view: [rows, columns]}, "adbc": {view: [rows, columns]},
"connectorx_sum": ..., "adbc_sum": ...} for tests/serve_drivers.rs.
"""

import json
import sys

import adbc_driver_postgresql.dbapi as adbc
import polars as pl


def main():
    uri, *views = sys.argv[1:]
    out = {"connectorx": {}, "adbc": {}}
    for view in views:
        df = pl.read_database_uri(f"select * from {view}", uri)
        out["connectorx"][view] = list(df.shape)
    out["connectorx_sum"] = int(
        pl.read_database_uri("select billing_value from billing", uri)["billing_value"].sum()
    )
    with adbc.connect(uri) as conn:
        with conn.cursor() as cur:
            for view in views:
                cur.execute(f"select * from {view}")
                table = cur.fetch_arrow_table()
                out["adbc"][view] = [table.num_rows, table.num_columns]
            cur.execute("select billing_value from billing")
            out["adbc_sum"] = int(sum(v for v in cur.fetch_arrow_table()["billing_value"].to_pylist() if v is not None))
    print(json.dumps(out))


main()

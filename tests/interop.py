"""Reads an hspq lake with DuckDB, pyarrow.dataset (default mode) and polars, and checks each
reader gets the same rows, values and column types as hspq's own views (CONTRACT §2).

Usage: python tests/interop.py LAKE EXPECTED.json
EXPECTED.json (written by tests/python.rs from `hspq sql`): {dataset: {"rows": n, "sum": {...}}}.
"""
import json
import sys
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

lake = Path(sys.argv[1])
expected = json.loads(Path(sys.argv[2]).read_text())

# The contract's types, as each reader names them.
ARROW = {
    "year": pa.int64(), "period": pa.string(), "report_type": pa.string(), "month": pa.string(),
    "period_from": pa.date32(), "date": pa.date32(), "billing_value": pa.int64(),
    "eligible_company_count": pa.int32(), "products": pa.list_(pa.string()),
    "ingested_at": pa.timestamp("us", tz="UTC"), "failure_ratio": pa.float64(), "has_scans": pa.bool_(),
}
POLARS = {
    "year": pl.Int64, "period": pl.String, "report_type": pl.String, "month": pl.String,
    "period_from": pl.Date, "date": pl.Date, "billing_value": pl.Int64, "eligible_company_count": pl.Int32,
    "products": pl.List(pl.String), "ingested_at": pl.Datetime("us", "UTC"), "failure_ratio": pl.Float64,
    "has_scans": pl.Boolean,
}
DUCK = {
    "year": "BIGINT", "period": "VARCHAR", "report_type": "VARCHAR", "month": "VARCHAR", "period_from": "DATE",
    "date": "DATE", "billing_value": "BIGINT", "eligible_company_count": "INTEGER", "products": "VARCHAR[]",
    "ingested_at": "TIMESTAMP WITH TIME ZONE", "failure_ratio": "DOUBLE", "has_scans": "BOOLEAN",
}

failures = []
con = duckdb.connect()
for name, want in expected.items():
    glob = f"{lake}/{name}/**/*.parquet"
    readers = {}
    for hive in (True, False):
        rel = con.sql(f"select * from read_parquet('{glob}', hive_partitioning = {str(hive).lower()})")
        types = dict(zip(rel.columns, [str(t) for t in rel.types]))
        for col, t in DUCK.items():
            if col in types and types[col] != t:
                failures.append(f"duckdb hive={hive} {name}.{col}: {types[col]} != {t}")
        readers[f"duckdb(hive={hive})"] = rel.arrow().read_all() if hasattr(rel.arrow(), "read_all") else rel.arrow()
    table = ds.dataset(str(lake / name)).to_table()
    for col, t in ARROW.items():
        if col in table.schema.names and table.schema.field(col).type != t:
            failures.append(f"pyarrow {name}.{col}: {table.schema.field(col).type} != {t}")
    readers["pyarrow.dataset"] = table
    # Hive partitioning with the files' own types for the folder keys, as the README shows it.
    first = next((lake / name).rglob("*.parquet"))
    keys = [part.split("=")[0] for part in first.relative_to(lake / name).parts[:-1]]
    hive = ds.HivePartitioning.discover(schema=pa.schema([table.schema.field(k) for k in keys]))
    readers["pyarrow.dataset(hive)"] = ds.dataset(str(lake / name), partitioning=hive).to_table()
    frame = pl.scan_parquet(glob).collect()
    for col, t in POLARS.items():
        if col in frame.columns and frame.schema[col] != t:
            failures.append(f"polars {name}.{col}: {frame.schema[col]} != {t}")
    readers["polars"] = frame.to_arrow()
    for reader, t in readers.items():
        if t.num_rows != want["rows"]:
            failures.append(f"{reader} {name}: {t.num_rows} rows, hspq says {want['rows']}")
        missing = set(want["columns"]) - set(t.schema.names)
        if missing:
            failures.append(f"{reader} {name}: columns {sorted(missing)} missing")
        for col, total in want["sums"].items():
            got = con.sql(f"select sum({col}) from t").fetchone()[0]
            if got != total:
                failures.append(f"{reader} {name}.{col}: sum {got} != {total}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"interop ok: {len(expected)} datasets through duckdb (hive on/off), pyarrow.dataset (hive on/off) and polars")

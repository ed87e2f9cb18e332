"""A plain glob reader of an S3 lake, as a Python user without hspq would read it: pyarrow's
dataset over S3 in its default mode (the README's way: every file holds its partition columns),
no deduplication (tests/s3.rs runs it through a sync).

    python s3_glob_reader.py <endpoint> <bucket/prefix> <stop file>

Reads `billing` again and again until the stop file exists (at least once), printing one line
per read: `<unix time> ok <rows minus distinct keys>` or `<unix time> error <message>`.
Credentials and region come from the AWS_* environment."""

import os
import sys
import time

import pyarrow.dataset as ds
import pyarrow.fs as fs

KEY = ["report_type", "year", "period", "security_center_id", "product"]


def duplicates(s3, root):
    table = ds.dataset(f"{root}/billing", format="parquet", filesystem=s3).to_table(
        columns=KEY
    )
    return table.num_rows - table.group_by(KEY).aggregate([]).num_rows


def main():
    endpoint, root, stop = sys.argv[1:4]
    scheme, _, host = endpoint.partition("://")
    s3 = fs.S3FileSystem(endpoint_override=host, scheme=scheme)
    while True:
        try:
            line = f"ok {duplicates(s3, root)}"
        except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
            line = "error " + " ".join(str(e).split())
        print(f"{time.time():.3f} {line}", flush=True)
        if os.path.exists(stop):
            return


if __name__ == "__main__":
    main()

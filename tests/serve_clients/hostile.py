"""Sends statements to `hspq serve` over both protocols and reports what each did.

Usage: hostile.py CONNINFO < statements.json

Each statement goes over the simple protocol (libpq's PQexec: one Query message) and the
extended one (PQexecParams: Parse/Bind/Describe/Execute/Sync), through psycopg's libpq binding
so that which protocol is used is certain (psycopg's cursors pick one themselves). Prints one
JSON line per statement and protocol: {"protocol", "sql", "ok", "sqlstate", "error"}. A broken
connection is reopened, so one statement's fate does not decide the next one's.
"""

import json
import sys

import psycopg
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus

OK = {ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK, ExecStatus.EMPTY_QUERY, ExecStatus.COPY_OUT}


def main():
    conninfo = sys.argv[1]
    corpus = json.load(sys.stdin)
    for protocol in ("simple", "extended"):
        conn = None
        for sql in corpus:
            if conn is None or conn.closed:
                conn = psycopg.connect(conninfo, autocommit=True)
            pg = conn.pgconn
            if protocol == "simple":
                result = pg.exec_(sql.encode())
            else:
                result = pg.exec_params(sql.encode(), [])
            ok = result.status in OK
            if result.status == ExecStatus.COPY_OUT:
                # It ran: read its rows to the end, so the connection goes on.
                while pg.get_copy_data(0)[0] > 0:
                    pass
                pg.get_result()
            sqlstate = result.error_field(DiagnosticField.SQLSTATE)
            error = (result.error_message or b"").decode(errors="replace").strip()
            # A statement that opened a block (`begin; ...`) leaves it for the next: end it, as
            # PostgreSQL would need.
            if pg.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                pg.exec_(b"ROLLBACK")
            print(
                json.dumps(
                    {
                        "protocol": protocol,
                        "sql": sql,
                        "ok": ok,
                        "sqlstate": sqlstate.decode() if sqlstate else None,
                        "error": error or None,
                    }
                ),
                flush=True,
            )
        conn.close()


if __name__ == "__main__":
    main()

"""`trader sql`: SQL on the read copy (never on the cycle's own file, which it would lock).

`trader sql -c "SELECT ..."` prints each statement's result; `trader sql` alone opens the
`duckdb` shell (the duckdb-cli package in the venv) on the read copy, read-only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import duckdb

from store.publish import connect_read_copy, read_copy_of
from tasks.settings import load_config


def _db_path(args: argparse.Namespace) -> Path:
    return Path(args.db) if args.db else load_config(args.config).cycle.db_path


def duckdb_shell() -> str | None:
    """The `duckdb` executable beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("duckdb")
    return str(beside) if beside.exists() else shutil.which("duckdb")


def run_statements(con: duckdb.DuckDBPyConnection, text: str, csv: bool) -> None:
    """Run each statement of `text`; print the rows of those that return any."""
    for statement in duckdb.extract_statements(text):
        relation = con.sql(statement.query)
        if relation is None:
            continue
        if csv:
            print(relation.pl().write_csv(), end="")
        else:
            relation.show(max_rows=1000, max_width=200)


def cmd_sql(args: argparse.Namespace) -> int:
    path = _db_path(args)
    copy = read_copy_of(path)
    if args.command_text is None:
        shell = duckdb_shell()
        if shell is None:
            print("trader sql: no duckdb shell found (make install); use trader sql -c QUERY",
                  file=sys.stderr)
            return 1
        connect_read_copy(path).close()  # the one-line error when nothing is published yet
        os.execv(shell, [shell, "-readonly", str(copy.views_file)])
    con = connect_read_copy(path)
    try:
        run_statements(con, args.command_text, args.csv)
    except duckdb.Error as exc:
        print(f"trader sql: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        con.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "sql", help="SQL on the read copy of the store (published each cycle, never blocks it)"
    )
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--db", default=None, help="the store whose read copy to open")
    p.add_argument("-c", dest="command_text", default=None, metavar="QUERY",
                   help="run QUERY (one or more statements) and print the results")
    p.add_argument("--csv", action="store_true", help="print results as CSV")
    p.set_defaults(func=cmd_sql)

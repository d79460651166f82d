"""make bench: DuckDB's Postgres scanner copying one table into one local Parquet file, the
peer pg-copy is measured against. sluice-bench runs it with the bench virtualenv's python
(scripts/bench.sh installs DuckDB and its Postgres extension from PyPI wheels):

    duckdb_copy.py EXTENSION_FILE DSN TABLE OUT.parquet COMPRESSION

and times the whole process, as it times pg-copy's. Prints the rows copied.
"""

import sys

import duckdb


def quoted(text):
    return "'" + text.replace("'", "''") + "'"


def main():
    extension, dsn, table, out, compression = sys.argv[1:]
    con = duckdb.connect()
    # `INSTALL postgres` downloads; the extension file of the PyPI wheel is loaded instead.
    con.execute(f"LOAD {quoted(extension)}")
    con.execute(f"ATTACH {quoted(dsn)} AS pg (TYPE postgres, READ_ONLY)")
    rows = con.execute(
        f"COPY (SELECT * FROM pg.public.{table}) TO {quoted(out)} "
        f"(FORMAT parquet, COMPRESSION {compression})"
    ).fetchone()[0]
    print(rows)


if __name__ == "__main__":
    main()

"""psycopg 3 session used by psycopg.test.ts: run against one target, print what it saw as JSON.

Usage: psycopg_client.py CONNINFO
Covers server-side binding, prepare=True (named statements), pipeline mode, COPY and notifies.
"""
import json
import sys

import psycopg
from psycopg import sql


def error(e):
    return {"sqlstate": e.sqlstate, "message": e.diag.message_primary, "class": type(e).__name__}


def main(conninfo):
    out = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append([d.severity, d.sqlstate, d.message_primary]))
        # ParameterStatus values the client was told at login and after a SET
        conn.execute("SET application_name = 'psycopg-test'")
        out["parameter_status"] = {k: conn.info.parameter_status(k) for k in (
            "server_version", "server_encoding", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
            "integer_datetimes", "standard_conforming_strings", "application_name")}
        out["parameter_status"]["server_version"] = out["parameter_status"]["server_version"] == conn.execute("SHOW server_version").fetchone()[0]

        conn.execute("CREATE TABLE pg3_items (id int PRIMARY KEY, name text, price numeric(10,2), data bytea)")

        # server-side binding: parameters travel in Bind, not in the SQL text
        with conn.cursor() as cur:
            cur.execute("SELECT %s::int + 1 AS n, %s::text AS s, %s AS b, %s::numeric AS d", (41, "héllo", b"\x00\xff", "1.25"))
            row = cur.fetchone()
            out["bound"] = [row[0], row[1], row[2].hex(), str(row[3])]
            cur.execute("SELECT %(a)s::int * %(b)s::int AS product", {"a": 6, "b": 7})
            out["named_params"] = cur.fetchall()
            cur.execute("SELECT %b::bytea AS bin, %t::text AS txt", (b"\x01\x02", "text"), binary=True)
            out["binary_result"] = [cur.fetchone()[0].hex(), cur.description[0].name]

        # prepare=True: a named statement (_pg3_N) prepared once, executed many times
        with conn.cursor() as cur:
            for i in range(1, 11):
                cur.execute("INSERT INTO pg3_items (id, name, price) VALUES (%s, %s, %s)", (i, f"item {i}", i * 1.5), prepare=True)
            for i in (2, 4, 99):
                cur.execute("SELECT id, name, price::text FROM pg3_items WHERE id = %s", (i,), prepare=True)
                out.setdefault("prepared_rows", []).append(cur.fetchall())
            cur.execute("SELECT name, statement FROM pg_prepared_statements ORDER BY name")
            out["prepared_statements"] = cur.fetchall()

        # pipeline mode: many statements sent before any result is read, one error in the middle
        with conn.pipeline() as p:
            with conn.cursor() as cur, conn.cursor() as counter:
                for i in range(11, 31):
                    cur.execute("INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (i, f"piped {i}"))
                counter.execute("SELECT count(*) FROM pg3_items")
                p.sync()
                out["pipeline_count"] = counter.fetchone()[0]
        try:
            with conn.pipeline():
                conn.execute("INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (100, "ok"))
                conn.execute("INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (1, "duplicate"))
                conn.execute("INSERT INTO pg3_items (id, name) VALUES (%s, %s)", (101, "skipped"))
        except psycopg.Error as e:
            out["pipeline_error"] = error(e)
        out["after_pipeline"] = conn.execute("SELECT array_agg(id ORDER BY id) FROM pg3_items WHERE id >= 100").fetchone()[0]

        # COPY in (rows and binary) and out
        with conn.cursor() as cur:
            with cur.copy("COPY pg3_items (id, name, data) FROM STDIN") as copy:
                for i in range(200, 1200):
                    copy.write_row((i, f"copied {i}\twith tab", bytes([i % 256]) * 3))
            with cur.copy("COPY (SELECT id, name, data FROM pg3_items WHERE id >= 200 ORDER BY id) TO STDOUT") as copy:
                out["copy_out"] = [list(r) for r in copy.rows()][:3]
            with cur.copy("COPY (SELECT id, name FROM pg3_items WHERE id >= 200 ORDER BY id) TO STDOUT (FORMAT binary)") as copy:
                out["copy_out_binary_bytes"] = sum(len(b) for b in copy)
            cur.execute("SELECT count(*), sum(length(data)) FROM pg3_items WHERE id >= 200")
            out["copied"] = cur.fetchone()
            try:
                with cur.copy("COPY pg3_items (id, name) FROM STDIN") as copy:
                    copy.write_row((5000, "fine"))
                    copy.write_row(("not a number", "bad"))
            except psycopg.Error as e:
                out["copy_error"] = error(e)
            # an exception in the client while copying in: psycopg sends CopyFail
            try:
                with cur.copy("COPY pg3_items (id, name) FROM STDIN") as copy:
                    copy.write_row((6000, "never stored"))
                    raise RuntimeError("client gave up")
            except psycopg.Error as e:
                out["copy_fail"] = error(e)
            cur.execute("SELECT count(*) FROM pg3_items WHERE id >= 5000")
            out["after_copy_fail"] = cur.fetchone()[0]

        # errors keep their SQLSTATE and class
        try:
            conn.execute("SELECT 1/0")
        except psycopg.Error as e:
            out["error"] = error(e)
        conn.execute("DO $$ BEGIN RAISE NOTICE 'notice %', 1; END $$")

        # notifies: a second connection notifies this one
        got = []
        conn.add_notify_handler(lambda n: got.append([n.channel, n.payload]))
        conn.execute("LISTEN pg3_channel")
        with psycopg.connect(conninfo, autocommit=True) as other:
            other.execute("NOTIFY pg3_channel, 'hello'")
            with other.transaction():
                other.execute("SELECT pg_notify('pg3_channel', 'from a transaction')")
                other.execute("NOTIFY pg3_channel, 'second in transaction'")
        conn.execute("SELECT 1")  # notifications arrive at the latest before its ReadyForQuery
        out["notifies"] = got
        out["notices"] = notices
    print(json.dumps(out, default=str, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])

"""A psycopg 3 session kept open across flips (flip-clients.test.ts).

Usage: psycopg_agent.py CONNINFO. Reads commands from stdin, answers one JSON line each:
  check     -> side (through a named prepared statement), statement_timeout, application_name
  notifies  -> the payloads of notifications received so far (waits up to 5 s for one)
Any error is answered as {"error": ...} and the session goes on.
"""
import json
import sys
import time

import psycopg

QUERY = "SELECT side FROM whoami WHERE %s::int > 0"


def main(conninfo):
    conn = psycopg.connect(conninfo, autocommit=True)
    received = []
    conn.add_notify_handler(lambda n: received.append(n.payload))
    conn.execute("SET application_name = 'psycopg-flip'")
    conn.execute("SET statement_timeout = '12345ms'")
    cur = conn.cursor()
    cur.execute(QUERY, (1,), prepare=True)
    conn.execute("LISTEN flip_psycopg")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        try:
            if cmd == "check":
                side = cur.execute(QUERY, (1,), prepare=True).fetchone()[0]
                out = {
                    "side": side,
                    "statement_timeout": conn.execute("SHOW statement_timeout").fetchone()[0],
                    "application_name": conn.execute("SHOW application_name").fetchone()[0],
                    "prepared": [r[0] for r in conn.execute("SELECT name FROM pg_prepared_statements ORDER BY name")],
                }
            elif cmd == "notifies":
                until = time.time() + 5
                while not received and time.time() < until:
                    conn.execute("SELECT 1")
                    time.sleep(0.05)
                out = {"payloads": list(received)}
                received.clear()
            elif cmd == "quit":
                break
            else:
                out = {"error": "unknown command " + cmd}
        except Exception as e:  # report and carry on: the test counts errors
            out = {"error": "%s %s" % (getattr(e, "sqlstate", None), e)}
        print(json.dumps(out), flush=True)
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1])

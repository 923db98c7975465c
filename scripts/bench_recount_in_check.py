"""check --full at 50 M when more instances changed than a slice holds: status's figures counted again
in the check's own transaction (status_counts.recount_kept). Forced by making replanning's one
comparison with a slice's size see -1 (the count's own slicing keeps the real size).

    /usr/bin/time -v .venv/bin/python scripts/bench_recount_in_check.py INDEX

INDEX is changed in place (a full check; status's figures counted and kept)."""
import logging
import sys
import time

from pacscopy.index import open_index
from pacscopy.send import status_counts
from pacscopy.check import checks

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
real_size, real_script = status_counts.slice_instances, status_counts.run_script
armed = []

def script(con, name, params=None):
    real_script(con, name, params)
    if name == "ops/status/replanned":
        armed.append(True)

def size(con):
    if armed:
        armed.clear()
        print(time.strftime("%H:%M:%S"), "replanning compares: forced 'many'", file=sys.stderr)
        return -1
    return real_size(con)

status_counts.run_script, status_counts.slice_instances = script, size
path = sys.argv[1]
t = time.monotonic()
con = open_index(path)
try:
    res = checks.run_checks(con, full=True)
    print("check done", round(time.monotonic() - t, 1), "s", res.mode, file=sys.stderr)
    print("kept:", con.execute("SELECT target, counted_at, updated_at FROM status_kept").fetchall(), file=sys.stderr)
    print("counts:", con.execute("SELECT sum(instances) FROM status_counts").fetchall(), file=sys.stderr)
finally:
    con.close()
print("closed", round(time.monotonic() - t, 1), "s", file=sys.stderr)

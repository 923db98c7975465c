"""The several-machines benchmark behind ``scripts/bench books``.

Send throughput with 1, 2 and 3 ``pacscopy send`` processes standing for hosts, sharing one
PostgreSQL on loopback (started by ``scripts/postgres``), into one DCMTK ``storescp +B --fork``
writing every object to disk. Every host's volume holds the whole corpus (the hardest case for
claims: every batch is contested), each host has its own index (a copy of one built once by
``pacscopy scan`` + ``pacscopy check``), joined to fresh books (``books init`` + ``books join``) for
every measurement; the storescp is fresh for every measurement too. Reference in the same run:
one ``pacscopy send`` without books (the local default). A run counts only if every sender exits 0,
storescp holds every instance and the books say complete with nothing stored by two hosts.

Reported: medians of N runs of the wall time from the first Popen to the last exit, instances/s,
ratios against the reference, the load average before each run (2-core machine shared with others).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_send as bsend  # noqa: E402  (receivers, peers, environment)
from bench_scan import DATA, PACSCOPY, REPO, environment, log  # noqa: E402

ENV = bsend.ENV
HOSTS = (1, 2, 3)


def corpus(files: int, size: int) -> Path:
    """A generated corpus (healthy Part 10 files), kept under bench-data/corpora/."""
    from pacscopy.testing.synth import make_corpus

    root = DATA / "corpora" / f"books-{files}x{size}"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        log(f"generating {files} files of {size} bytes under {root}")
        make_corpus(root, files, size)
        done.touch()
    return root


def send_args(prog: str, doc: str | None, runs: int, associations: str) -> argparse.ArgumentParser:
    """The options every send benchmark over a generated corpus takes: --files, --size, --runs, --associations,
    --work-dir."""
    ap = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])
    ap.add_argument("--files", type=int, default=4000, help="instances in the corpus (default 4000)")
    ap.add_argument("--size", type=int, default=20_000, help="bytes per instance (default 20000)")
    ap.add_argument("--runs", type=int, default=runs, help=f"runs per configuration (default {runs})")
    ap.add_argument("--associations", type=int, default=2, help=f"{associations} (default 2)")
    ap.add_argument("--work-dir", type=Path, default=DATA,
                    help="where the index copies, their run folders (the send's journal) and storescp's files go "
                    "(default bench-data; /dev/shm: no disk, so no fsync waits behind other work on the disk)")
    return ap


@contextlib.contextmanager
def checked_base(root: Path, prefix: str, where: Path = DATA) -> Iterator[tuple[Path, Path]]:
    """A temporary folder under ``where`` (bench-data) and in it ``base.duckdb``: ``root`` scanned and checked once."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=where) as tmps:
        tmp = Path(tmps)
        base = tmp / "base.duckdb"
        run([str(PACSCOPY), "scan", str(root), "--index", str(base), "-q"])
        run([str(PACSCOPY), "check", "--index", str(base), "-q"])
        yield tmp, base


@contextlib.contextmanager
def work_dir(tmp: Path, name: str) -> Iterator[Path]:
    """A fresh folder for one measurement, removed after it."""
    work = tmp / name
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, **kw)  # type: ignore[call-overload]
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:4])}... failed ({r.returncode}): {r.stderr.strip()}")
    return r


@contextlib.contextmanager
def postgres(tmp: Path) -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="pacscopy-bench-pg-", dir="/var/tmp"))
    try:
        url = run([str(REPO / "scripts" / "postgres"), "start", str(folder)]).stdout.strip().splitlines()[-1]
        yield url
    finally:
        subprocess.run([str(REPO / "scripts" / "postgres"), "stop", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def new_database(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name}")  # a name made here, not user input
        con.execute(f"CREATE DATABASE {name}")
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, "", ""))


def disjoint_bases(root: Path, tmp: Path, hosts: int) -> list[Path]:
    """``hosts`` indexes over disjoint volumes (hard links, or copies when ``tmp`` is on another file
    system such as /dev/shm: file i goes to host i mod ``hosts``)."""
    files = sorted(root.rglob("*.dcm"))
    out = []
    for h in range(hosts):
        vol = tmp / f"disjoint{hosts}" / f"vol{h + 1}"
        for i, f in enumerate(files):
            if i % hosts == h:
                dest = vol / f.relative_to(root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(f, dest)
                except OSError as e:
                    if e.errno != errno.EXDEV:
                        raise
                    shutil.copyfile(f, dest)  # another file system (--work-dir /dev/shm): a copy
        index = tmp / f"disjoint{hosts}-host{h + 1}.duckdb"
        run([str(PACSCOPY), "scan", str(vol), "--index", str(index), "-q"])
        run([str(PACSCOPY), "check", "--index", str(index), "-q"])
        out.append(index)
    return out


def measure(bases: list[Path], files: int, hosts: int, books: str | None, tmp: Path, associations: int) -> dict:
    """One measurement: ``hosts`` senders (0 books: one plain local send) into a fresh storescp."""
    indexes = []
    for h in range(max(hosts, 1)):
        idx = tmp / f"host{h + 1}.duckdb"
        shutil.copyfile(bases[h % len(bases)], idx)
        indexes.append(idx)
    if books:
        run([str(PACSCOPY), "books", "init", books, "--name", "bench"])
        for h, idx in enumerate(indexes):
            run([str(PACSCOPY), "books", "join", books, "--index", str(idx), "--host", f"host{h + 1}"])
    with bsend.receiver("storescp", tmp) as rcv:
        target = f"{rcv.ae}@127.0.0.1:{rcv.port}"
        load = os.getloadavg()[0]
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        procs = [subprocess.Popen([str(PACSCOPY), "send", "--target", target, "--index", str(idx), "-q",
                                   "--associations", str(associations)] + (["--books", books] if books else []),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
                 for idx in indexes]
        outs = [p.communicate(timeout=bsend.SEND_TIMEOUT) for p in procs]
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the senders' process trees, reaped meanwhile
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        ok = all(p.returncode == 0 for p in procs)
        got = bsend.wait_count(rcv, files)
    complete = True
    if books:
        r = subprocess.run([str(PACSCOPY), "reconcile", "--target", target, "--books", books, "--format", "json"],
                           capture_output=True, text=True, env=ENV)
        doc = json.loads(r.stdout) if r.stdout.strip() else {}
        complete = bool(doc.get("complete")) and doc.get("states", {}).get("stored_by_two_hosts") == 0
    if not ok:
        log("a sender failed: " + " | ".join(e.strip()[-300:] for _, e in outs))
    for idx in indexes:
        idx.unlink(missing_ok=True)
    return {"hosts": hosts, "books": bool(books), "wall": wall, "ok": ok and got >= files and complete,
            "received": got, "load": load, "cpu": cpu}


def main(argv: list[str]) -> None:
    ap = send_args("scripts/bench books", __doc__, 3, "associations per host")
    ap.add_argument("--layout", choices=("overlap", "disjoint"), default="overlap",
                    help="overlap: every host holds the whole corpus (every batch contested); disjoint: host i "
                         "holds every i-th file (default overlap)")
    args = ap.parse_args(argv)
    root = corpus(args.files, args.size)
    results: list[dict] = []
    with checked_base(root, "pacscopy-bench-books-", args.work_dir) as (tmp, base):
        bases = {h: [base] for h in HOSTS}
        if args.layout == "disjoint":
            bases.update({h: disjoint_bases(root, tmp, h) for h in HOSTS if h > 1})
        with postgres(tmp) as url:
            configs = [(1, False)] + [(h, True) for h in HOSTS]
            for r in range(args.runs):
                for i, (hosts, with_books) in enumerate(configs[r % len(configs):] + configs[:r % len(configs)]):
                    books = new_database(url, f"bench_{r}_{hosts}_{int(with_books)}") if with_books else None
                    with work_dir(tmp, f"run{r}-{hosts}-{int(with_books)}") as work:
                        m = measure(bases[hosts], args.files, hosts, books, work, args.associations)
                    log(f"run {r + 1}: {hosts} host(s){' + books' if with_books else ''}: {m['wall']:.2f} s, "
                        f"ok={m['ok']}, load {m['load']:.2f}")
                    results.append(m)
    report(results, args)


def report(results: list[dict], args: argparse.Namespace) -> None:
    def med(hosts: int, books: bool, key: str) -> float:
        xs = [m[key] for m in results if m["hosts"] == hosts and m["books"] == books and m["ok"] and key in m]
        return statistics.median(xs) if xs else float("nan")

    ref = med(1, False, "wall")
    lines = [f"### Several hosts sharing one PostgreSQL ({args.layout}): {args.files} × {args.size // 1000} KB into storescp +B --fork",
             "",
             f"`scripts/bench books --files {args.files} --size {args.size} --runs {args.runs} "
             f"--associations {args.associations} --layout {args.layout}"
             + (f" --work-dir {args.work_dir}" if args.work_dir != DATA else "") + "`; "
             + ("every host's volume holds the whole corpus (every batch contested)" if args.layout == "overlap"
                else "host i of K holds every K-th file (disjoint volumes, no batch contested)")
             + "; medians of the runs that stored everything exactly once.",
             "",
             "| senders | wall (s) | instances/s | vs one plain send | senders' CPU (s) | load avg (1 min) before | runs ok |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for hosts, books in [(1, False)] + [(h, True) for h in HOSTS]:
        w = med(hosts, books, "wall")
        n_ok = sum(1 for m in results if m["hosts"] == hosts and m["books"] == books and m["ok"])
        n = sum(1 for m in results if m["hosts"] == hosts and m["books"] == books)
        label = "1 plain `send` (no books, reference)" if not books else f"{hosts} host(s) through the books"
        lines.append(f"| {label} | {w:.2f} | {args.files / w:.0f} | {ref / w:.2f} | {med(hosts, books, 'cpu'):.1f} "
                     f"| {med(hosts, books, 'load'):.2f} | {n_ok}/{n} |")
    lines += ["", *environment()]
    text = "\n".join(lines)
    print(text)
    out = DATA / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"books-{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(text + "\n")
    (out / f"books-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])

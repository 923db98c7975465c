"""Several hosts sending through shared books in PostgreSQL, as real processes: kill -9 and restart,
shards, PostgreSQL stopped mid-send (issue 13, part 2)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import assert_keys_hold, rows
from tests.pg import PgServer, own_pg, pg_server, pg_url  # noqa: F401  (fixtures)
from tests.test_books import make_hosts

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'pacscopy[postgres]'")

def _send_cmd(index: Path, target: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pacscopy", "send", "--target", target, "--index", str(index), "-q",
            "--associations", "2", *extra]


def _env(url: str) -> dict[str, str]:
    """The environment of a host: the password through libpq's $PGPASSWORD (the index never holds it)."""
    return {**os.environ, "PGPASSWORD": urllib.parse.urlsplit(url).password or ""}


class Counting:
    """pacscopy's own receiver, counting how often each SOPInstanceUID arrives."""

    def __init__(self, folder: Path) -> None:
        from pacscopy.receive import Receiver

        self.arrivals: collections.Counter[str] = collections.Counter()
        self.rx = Receiver(folder, on_store=lambda sop, path: self.arrivals.update([sop]))
        self.port = self.rx.start()
        self.target = f"PACSCOPY_RX@127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.rx.stop()


def _joined(pg_url: str, tmp_path: Path, cli, n: int) -> tuple[list[Path], set[str]]:
    indexes, sops = make_hosts(tmp_path, cli, n)
    assert cli("books", "init", pg_url, "--name", "shared").code == 0
    for i, index in enumerate(indexes):
        r = cli("books", "join", pg_url, "--index", index, "--host", f"host{i + 1}")
        assert r.code == 0, r.err
    return indexes, sops


def _books_states(cli, url: str, target: str) -> dict:
    r = cli("reconcile", "--target", target, "--books", url, "--format", "json")
    assert r.code in (0, 1), r.err
    return json.loads(r.out)


def test_three_hosts_one_killed_and_restarted_every_instance_stored_once(pg_url: str, tmp_path: Path, cli) -> None:
    indexes, sops = _joined(pg_url, tmp_path, cli, 3)
    rx = Counting(tmp_path / "rx")
    try:
        procs = [subprocess.Popen(_send_cmd(i, rx.target, "--max-rate", "150KB/s"), env=_env(pg_url),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in indexes]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(rx.arrivals.values()) < 15:
            time.sleep(0.05)
        os.kill(procs[0].pid, signal.SIGKILL)  # host1 dies mid-send
        procs[0].wait()
        for p in procs[1:]:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, out + err
        time.sleep(0.5)  # host1's workers notice their parent died
        assert 0 < sum(rx.arrivals.values()) < len(sops)
        mid = _books_states(cli, pg_url, rx.target)
        assert not mid["complete"]
        # host1 comes back: it catches up, takes its own claims again and sends the rest
        r = subprocess.run(_send_cmd(indexes[0], rx.target), env=_env(pg_url), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        rx.stop()
    assert set(rx.arrivals) == sops  # every instance on the target
    doc = _books_states(cli, pg_url, rx.target)
    assert doc["complete"], doc
    assert doc["states"]["stored"] == len(sops) and doc["states"]["stored_by_two_hosts"] == 0
    # stored exactly once in the shared books: one storing host per instance
    import psycopg

    with psycopg.connect(pg_url) as con:
        per_sop = dict(con.execute("SELECT sop_instance_uid, count(DISTINCT host_id) FROM transfers "
                                   "WHERE outcome IN ('stored', 'warning') GROUP BY 1").fetchall())
        host1 = {r[0] for r in con.execute("SELECT c.sop_instance_uid FROM claims c JOIN hosts h USING (host_id) "
                                           "WHERE h.name = 'host1'").fetchall()}
        hosts_sending = dict(con.execute("SELECT h.name, count(*) FROM claims c JOIN hosts h USING (host_id) "
                                         "GROUP BY 1").fetchall())
    assert set(per_sop) == sops and set(per_sop.values()) == {1}
    # an instance arrived twice only when host1 itself sent it again (in flight when it was killed)
    twice = {s for s, n in rx.arrivals.items() if n > 1}
    assert twice <= host1, twice - host1
    assert len(hosts_sending) == 3  # the work was shared
    # each host's local books hold what it sent: together, every instance once
    local = collections.Counter()
    for index in indexes:
        for (sop,) in rows(index, "SELECT DISTINCT sop_instance_uid FROM transfers WHERE outcome IN ('stored', 'warning')"):
            local[sop] += 1
    assert set(local) == sops and set(local.values()) == {1}
    for index in indexes:  # the transfers merged from each host's journal carry their instance keys
        assert_keys_hold(index, ("files", "plan_auto", "transfers"))


def test_shards_split_by_study_and_overlapping_shares_are_refused(pg_url: str, tmp_path: Path, cli) -> None:
    (a, b), sops = _joined(pg_url, tmp_path, cli, 2)
    rx = Counting(tmp_path / "rx")
    try:
        ra = cli("send", "--target", rx.target, "--index", a, "--books", pg_url, "--shard", "1/2", "-q")
        assert ra.code == 0, ra.err
        over = cli("send", "--target", rx.target, "--index", b, "--books", pg_url, "--shard", "1/4", "-q")
        assert over.code == 2 and over.err.count("\n") == 1 and "Traceback" not in over.err
        assert "--shard 1/4 overlaps host 'host1''s share 1/2" in over.err and "refused" in over.err
        rb = cli("send", "--target", rx.target, "--index", b, "--books", pg_url, "--shard", "2/2", "-q")
        assert rb.code == 0, rb.err
    finally:
        rx.stop()
    study = dict(r for i in (a, b) for r in rows(i, "SELECT sop_instance_uid, study_instance_uid FROM plan"))
    import hashlib

    def share(uid: str) -> int:
        return int(hashlib.md5(uid.encode()).hexdigest()[:8], 16) % 2 + 1

    import psycopg

    with psycopg.connect(pg_url) as con:
        by_host = con.execute("SELECT t.sop_instance_uid, h.name FROM transfers t JOIN hosts h USING (host_id) "
                              "WHERE outcome = 'stored'").fetchall()
    # each study travelled from the host of its share, and only instances of its own share
    assert by_host and all(share(study[s]) == int(h[-1]) for s, h in by_host)
    assert set(rx.arrivals.values()) == {1}
    doc = _books_states(cli, pg_url, rx.target)
    assert doc["states"]["stored_by_two_hosts"] == 0
    # a study only on the other share's host is left: a last run without --shard sends it
    if doc["states"]["left"]:
        assert cli("send", "--target", rx.target, "--index", b, "--books", pg_url, "-q").code in (0, 1)


def test_postgres_stopped_mid_send_stops_cleanly_and_resumes(own_pg: PgServer, tmp_path: Path, cli) -> None:
    from pacscopy.testing.synth import make_corpus

    url = own_pg.new_database()
    make_corpus(tmp_path / "vol", 300, 4_000)
    a = tmp_path / "a.duckdb"
    assert cli("scan", tmp_path / "vol", "--index", a, "-q").code == 0
    assert cli("check", "--index", a, "-q").code == 0
    sops = {s for (s,) in rows(a, "SELECT sop_instance_uid FROM plan WHERE disposition = 'send'")}
    assert cli("books", "init", url, "--name", "m").code == 0
    assert cli("books", "join", url, "--index", a, "--host", "A").code == 0
    rx = Counting(tmp_path / "rx")
    try:
        # the password travels in --books this time (the link holds none)
        p = subprocess.Popen(_send_cmd(a, rx.target, "--max-rate", "80KB/s", "--associations", "1", "--books", url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(rx.arrivals.values()) < 20:
            time.sleep(0.05)
        own_pg.stop()
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2, out + err
        assert err.startswith("pacscopy: error: books postgresql://pacscopy@127.0.0.1:") and "unreachable" in err
        assert "send again once PostgreSQL is back" in err
        assert err.count("\n") == 1 and "Traceback" not in err
        got = set(rx.arrivals)
        assert 20 <= len(got) < len(sops)  # it stopped: no new instance was claimed, none sent
        # what the target answered is in the local books, intact, once each
        local = rows(a, "SELECT sop_instance_uid, count(*) FROM transfers WHERE outcome = 'stored' GROUP BY 1")
        assert {s for s, _ in local} == got and {n for _, n in local} == {1}
        own_pg.start()
        url = own_pg.database_url(urllib.parse.urlsplit(url).path.lstrip("/"))  # the port may have changed
        r = subprocess.run(_send_cmd(a, rx.target, "--books", url), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "recorded" in r.stderr and "stored by an earlier run of this host" in r.stderr  # the catch-up
    finally:
        rx.stop()
    assert set(rx.arrivals) == sops and set(rx.arrivals.values()) == {1}  # nothing sent twice
    doc = _books_states(cli, url, rx.target)
    assert doc["complete"] and doc["states"]["stored"] == len(sops), doc


def test_claims_of_a_host_gone_for_good_are_released(pg_url: str, tmp_path: Path, cli) -> None:
    (a, b), sops = _joined(pg_url, tmp_path, cli, 2)
    b_sops = sorted(s for (s,) in rows(b, "SELECT sop_instance_uid FROM plan WHERE disposition = 'send'"))
    rx = Counting(tmp_path / "rx")
    try:
        import psycopg

        # host1 claimed host2's first instances for this target, and still holds its sending lock (its
        # session lingers: a machine gone without closing its connection, until TCP keepalive ends it)
        alive = psycopg.connect(pg_url, autocommit=True)
        with psycopg.connect(pg_url) as con:
            con.execute("INSERT INTO claims (target, sop_instance_uid, host_id, run_id) "
                        "SELECT %s, s, (SELECT host_id FROM hosts WHERE name = 'host1'), 1 FROM unnest(%s::text[]) s",
                        (rx.target, b_sops[:10]))
        alive.execute("SELECT pg_advisory_lock_shared(7013013, (SELECT host_id FROM hosts WHERE name = 'host1'))")
        r = cli("send", "--target", rx.target, "--index", b, "--books", pg_url, "-q")
        assert r.code == 0, r.err
        assert "10 instances claimed by other hosts (theirs to send)" in r.out
        assert not set(b_sops[:10]) & set(rx.arrivals)
        r = cli("books", "release", pg_url, "--host", "host1", "--target", rx.target)
        assert r.code == 0 and "released 10 claims of host 'host1'" in r.out
        alive.close()
        r = cli("send", "--target", rx.target, "--index", b, "--books", pg_url, "-q")
        assert r.code == 0, r.err
        assert set(b_sops) <= set(rx.arrivals) and set(rx.arrivals.values()) == {1}
        bad = cli("books", "release", pg_url, "--host", "nobody")
        assert bad.code == 2 and "no host 'nobody'" in bad.err
    finally:
        rx.stop()


def test_failed_instances_release_their_claims_for_another_host(pg_url: str, tmp_path: Path, cli) -> None:
    import psycopg

    from tests.peers import faulty_scp

    (a, b), sops = _joined(pg_url, tmp_path, cli, 2)
    with faulty_scp(tmp_path, "c000") as peer:  # refuses every instance: 0xC000
        r = cli("send", "--target", peer.target, "--index", a, "--books", pg_url, "-q", "--retries", "0")
        assert r.code == 1, r.err
        with psycopg.connect(pg_url) as con:
            claims = con.execute("SELECT count(*) FROM claims").fetchone()
            failed = con.execute("SELECT count(DISTINCT sop_instance_uid) FROM transfers WHERE outcome = 'failed'"
                                 ).fetchone()
        assert claims == (0,)  # released: another host may try its copy
        assert failed is not None and failed[0] > 0
        doc = _books_states(cli, pg_url, peer.target)
        assert doc["states"]["failed"] == failed[0] and doc["states"]["sending"] == 0
        r = cli("send", "--target", peer.target, "--index", b, "--books", pg_url, "-q", "--retries", "0")
        assert r.code == 1 and "; 0 instances claimed by other hosts" in r.out


def test_a_killed_hosts_claims_are_taken_over_without_a_manual_step(pg_url: str, tmp_path: Path, cli) -> None:
    """Two hosts holding the same volume: host1 is killed (-9) mid-send, leaving claims 'sending'; host2's
    send takes them over (host1's session, and with it its sending lock, ended with its process) and
    finishes the work: no 'books release', every instance stored exactly once in the shared books."""
    import psycopg

    from pacscopy.testing.synth import make_archive

    arch = tmp_path / "arch"
    make_archive(arch, patients=3, studies_per_patient=2, series_per_study=2, instances_per_series=4,
                 defects=False, conflicts=False, specials=False)
    indexes = [tmp_path / f"host{i}.duckdb" for i in (1, 2)]
    for index in indexes:
        assert cli("scan", arch / "vol1", "--index", index, "-q").code == 0
        assert cli("check", "--index", index, "-q").code == 0
    sops = {r[0] for r in rows(indexes[0], "SELECT sop_instance_uid FROM plan WHERE disposition = 'send'")}
    assert cli("books", "init", pg_url, "--name", "shared").code == 0
    for i, index in enumerate(indexes):
        assert cli("books", "join", pg_url, "--index", index, "--host", f"host{i + 1}").code == 0
    rx = Counting(tmp_path / "rx")
    try:
        host1 = subprocess.Popen(_send_cmd(indexes[0], rx.target, "--max-rate", "60KB/s"), env=_env(pg_url),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(rx.arrivals.values()) < 10:
            assert host1.poll() is None, host1.communicate()
            time.sleep(0.05)
        os.kill(host1.pid, signal.SIGKILL)
        host1.wait()
        time.sleep(1.0)  # host1's workers notice their parent died
        with psycopg.connect(pg_url) as con:
            left = con.execute("SELECT count(*) FROM claims c JOIN hosts h USING (host_id) "
                               "WHERE h.name = 'host1' AND c.state = 'sending'").fetchone()[0]
        assert left > 0, "host1 left no claim 'sending': kill it sooner"
        r = subprocess.run(_send_cmd(indexes[1], rx.target), env=_env(pg_url), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        rx.stop()
    assert set(rx.arrivals) == sops
    doc = _books_states(cli, pg_url, rx.target)
    assert doc["complete"], doc
    assert doc["states"]["stored"] == len(sops) and doc["states"]["stored_by_two_hosts"] == 0
    with psycopg.connect(pg_url) as con:
        per_sop = dict(con.execute("SELECT sop_instance_uid, count(*) FROM transfers "
                                   "WHERE outcome IN ('stored', 'warning') GROUP BY 1").fetchall())
        sending = con.execute("SELECT count(*) FROM claims WHERE state <> 'stored'").fetchone()[0]
    assert set(per_sop) == sops and set(per_sop.values()) == {1}, per_sop
    assert sending == 0


def test_a_plan_changed_since_books_publish_is_published_again_by_the_send(pg_url: str, tmp_path: Path, cli) -> None:
    """A decide (or check, map, manifest load) after 'books publish' changes the local plan; the books kept the
    old one, which every host's status and reconcile read. The send publishes it again before it sends,
    saying so; a send with the plan unchanged does not."""
    import psycopg

    (a, b), sops = _joined(pg_url, tmp_path, cli, 2)

    def books_plan() -> set[tuple[str, str]]:
        with psycopg.connect(pg_url) as con:
            return {(r[0], r[1]) for r in con.execute(
                "SELECT sop_instance_uid, disposition FROM plan JOIN hosts USING (host_id) WHERE name = 'host1'")}

    def local_plan() -> set[tuple[str, str]]:
        return {(r[0], r[1]) for r in rows(a, "SELECT sop_instance_uid, disposition FROM plan")}

    assert books_plan() == local_plan()
    skipped = [r[0] for r in rows(a, "SELECT sop_instance_uid FROM plan WHERE disposition = 'send' ORDER BY 1 LIMIT 2")]
    for sop in skipped:
        r = cli("decide", "--sop", sop, "--action", "skip", "--note", "not for the new PACS", "--index", a)
        assert r.code == 0, r.err
    assert books_plan() != local_plan()  # the books still show the plan as published
    rx = Counting(tmp_path / "rx")
    try:
        r = cli("send", "--target", rx.target, "--index", a, "--books", pg_url, "-q")
        assert r.code == 0, r.err
        assert f"books: this host's plan changed since 'books publish': published it again ({len(local_plan())} " \
               "instances)" in r.err, r.err
        assert books_plan() == local_plan()
        assert {d for s, d in books_plan() if s in skipped} == {"skip"}
        assert not set(skipped) & set(rx.arrivals)  # the decision holds for the send too
        again = cli("send", "--target", rx.target, "--index", a, "--books", pg_url, "-q")
        assert again.code == 0, again.err
        assert "published it again" not in again.err  # unchanged since: not published again
    finally:
        rx.stop()
    doc = _books_states(cli, pg_url, rx.target)
    assert doc["states"]["stored_by_two_hosts"] == 0

"""reconcile from the per-instance states status keeps (issue 12): the same reconciliation as a full
evaluation, whether the kept states hold, are stale, or were never kept; bounded memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pacscopy.check.checks import run_checks
from pacscopy.dicom.peer import Target
from pacscopy.index import open_index
from pacscopy.send import status_counts
from pacscopy.testing import scale
from pacscopy.verify import reconcile as rc

T = scale.TARGET

# The manifest reconciliation's rows as reconcile computed them before its states were read by key
# (sql/reconcile/manifest_states.sql of main 2221b66, on final_states directly): the reference.
MANIFEST_REFERENCE = """
WITH fs AS (SELECT sop_instance_uid, disposition, final_state, reason FROM final_states($target)),
held AS (SELECT DISTINCT sop_instance_uid FROM files WHERE status IN ('ok', 'suspect', 'corrupt')),
r AS (
    SELECT m.sop_instance_uid, m.location, m.state AS manifest_state, true AS in_manifest,
           h.sop_instance_uid IS NOT NULL AS has_file,
           CASE WHEN fs.final_state = 'verified' THEN 'verified'
                WHEN m.state = 'deleted' AND fs.disposition IS DISTINCT FROM 'send' THEN 'excluded_deleted'
                WHEN fs.final_state IS NOT NULL THEN fs.final_state
                WHEN d.action IS NOT NULL THEN 'excluded_decision'
                ELSE 'lost_no_file' END AS final_state,
           CASE WHEN fs.final_state = 'verified' THEN fs.reason
                WHEN m.state = 'deleted' AND fs.disposition IS DISTINCT FROM 'send'
                     THEN 'deleted in the old PACS''s database'
                          || CASE WHEN fs.sop_instance_uid IS NULL THEN '; no file holds it'
                                  ELSE '; its file is not sent (' || fs.disposition || ')' END
                WHEN fs.final_state IS NOT NULL THEN fs.reason
                WHEN d.action IS NOT NULL THEN 'decision (' || d.action || '): ' || d.note
                ELSE 'broken link: no scanned file holds it (location ' || coalesce(m.location, 'not recorded') || ', '
                     || coalesce(m.state, 'state not recorded') || '): restore and scan that volume, or decide' END AS reason
    FROM manifest m
    LEFT JOIN fs USING (sop_instance_uid)
    LEFT JOIN held h USING (sop_instance_uid)
    LEFT JOIN decisions d USING (sop_instance_uid)
    UNION ALL
    SELECT fs.sop_instance_uid, NULL, NULL, false, true, fs.final_state, 'not in the old PACS''s database; ' || fs.reason
    FROM fs
    WHERE EXISTS (SELECT 1 FROM manifest)
      AND NOT EXISTS (SELECT 1 FROM manifest m WHERE m.sop_instance_uid = fs.sop_instance_uid)
)
"""


def _mixed_index(path: Path, rows: int = 6000, manifest: bool = True) -> str:
    """A checked synthetic index with most final states: decisions (skip, hold), verify results of
    every kind, vanished sources, changed copies; with a manifest that knows most instances, some
    deleted, and some it lists that no file holds (one of them decided)."""
    idx = str(path)
    con = open_index(idx, create=True)
    try:
        scale.fill(con, rows, sent=0.6, verified=0.5)
        if manifest:
            con.execute("""
                INSERT INTO manifest_loads (loaded_at, source, format, rows) VALUES (now()::TIMESTAMP, '/x.csv', 'csv', 0);
                INSERT INTO manifest (sop_instance_uid, study_instance_uid, series_instance_uid, sop_class_uid,
                                      patient_id, patient_name, location, state, source_row, sop_key, cmp_hash)
                SELECT DISTINCT ON (sop_instance_uid) sop_instance_uid, study_instance_uid, series_instance_uid,
                       sop_class_uid, patient_id, patient_name,
                       CASE WHEN hash(sop_instance_uid) % 11 = 0 THEN NULL ELSE 'TAPE' || hash(sop_instance_uid) % 4 END,
                       CASE WHEN hash(sop_instance_uid) % 13 = 0 THEN 'deleted' ELSE 'online' END, 1,
                       manifest_sop_key(sop_instance_uid), 0
                FROM files WHERE sop_instance_uid IS NOT NULL AND hash(sop_instance_uid) % 10 < 8;
                INSERT INTO manifest (sop_instance_uid, location, state, source_row, sop_key, cmp_hash)
                SELECT '1.2.3.999.' || i, 'TAPE9', CASE WHEN i % 2 = 0 THEN 'offline' END, 1,
                       manifest_sop_key('1.2.3.999.' || i), 0
                FROM range(40) t(i);
                UPDATE manifest_loads SET rows = (SELECT count(*) FROM manifest);
                INSERT INTO decisions (sop_instance_uid, action, note) VALUES ('1.2.3.999.3', 'skip', 'INC-9: lost');
            """)
        run_checks(con)
        con.execute(f"""
            INSERT INTO decisions (sop_instance_uid, action, note)
            SELECT sop_instance_uid, CASE WHEN hash(sop_instance_uid) % 2 = 0 THEN 'skip' ELSE 'hold' END, 'INC-1'
            FROM plan_auto WHERE disposition = 'send' AND hash(sop_instance_uid) % 97 = 0
            ON CONFLICT DO NOTHING;
            INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, sop_hash)
            SELECT '{T}', sop_instance_uid,
                   CASE WHEN hash(sop_instance_uid) % 3 = 0 THEN 'retrieve' ELSE 'find' END,
                   TIMESTAMP '2026-11-07',
                   CASE hash(sop_instance_uid) % 3 WHEN 0 THEN 'mismatch' WHEN 1 THEN 'missing_on_target' ELSE 'failed' END,
                   'seen in the test', sop_hash_of(sop_instance_uid)
            FROM transfers WHERE outcome = 'stored' AND hash(sop_instance_uid) % 53 = 0;
            UPDATE files SET status = 'missing'
            WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM transfers WHERE hash(sop_instance_uid) % 89 = 1);
            UPDATE files SET dataset_xxh3 = 'changed' || dataset_xxh3
            WHERE status = 'ok' AND sop_instance_uid IN (SELECT sop_instance_uid FROM transfers
                                                         WHERE hash(sop_instance_uid) % 83 = 2);
        """)
    finally:
        con.close()
    return idx


def _reconcile(idx: str, *, read_only: bool, limit: int = 50, **kw: Any) -> rc.Reconciliation:
    con = open_index(idx, read_only=read_only, **kw)
    try:
        return rc.reconcile(con, Target.parse(T), query_target=False, limit=limit)
    finally:
        con.close()


def _comparable(rec: rc.Reconciliation) -> dict[str, Any]:
    data = json.loads(rc.to_json(rec))
    for k in ("generated_at", "states"):
        data.pop(k)
    return data


def _reference(idx: str, limit: int = 50) -> dict[str, Any]:
    """What a reconciliation must show, queried from final_states directly (the full evaluation)."""
    from pacscopy.verify.reconcile import EXCLUDED, PROBLEMS

    con = open_index(idx, read_only=True)
    try:
        p = {"target": T}
        out: dict[str, Any] = {
            "totals": dict(con.execute("SELECT final_state, count(*) FROM final_states($target) GROUP BY 1", p).fetchall()),
            "studies": con.execute("""
                SELECT f.study_instance_uid, count(*) FILTER (WHERE f.disposition = 'send' OR s.sop_instance_uid IS NOT NULL),
                       count(s.sop_instance_uid), count(*) FILTER (WHERE f.final_state = 'verified'),
                       count(*) FILTER (WHERE f.final_state LIKE 'excluded_%')
                FROM final_states($target) f
                LEFT JOIN stored_content s ON s.target = $target AND s.sop_instance_uid = f.sop_instance_uid
                WHERE f.study_instance_uid IS NOT NULL GROUP BY 1 ORDER BY 1""", p).fetchall()}
        for name, states in (("problems", PROBLEMS), ("excluded", EXCLUDED)):
            cur = con.execute("SELECT * FROM final_states($target) WHERE list_contains($s, final_state) "
                              "ORDER BY study_instance_uid, sop_instance_uid LIMIT $n", dict(p, s=list(states), n=limit))
            cols = [d[0] for d in cur.description]
            out[name] = [dict(zip(cols, r)) for r in cur.fetchall()]
        if con.execute("SELECT count(*) FROM manifest_loads").fetchone()[0]:
            out["manifest_totals"] = con.execute(MANIFEST_REFERENCE + """
                SELECT in_manifest, final_state, count(*) FROM r GROUP BY ALL ORDER BY ALL""", p).fetchall()
            out["manifest_locations"] = con.execute(MANIFEST_REFERENCE + """
                SELECT coalesce(location, '(not recorded)'), count(*), count(*) FILTER (WHERE has_file),
                       count(*) FILTER (WHERE NOT has_file AND manifest_state IS DISTINCT FROM 'deleted'),
                       count(*) FILTER (WHERE manifest_state = 'deleted'), count(*) FILTER (WHERE final_state = 'verified')
                FROM r WHERE in_manifest GROUP BY 1 ORDER BY 4 DESC, 1""", p).fetchall()
            out["manifest_problems"] = con.execute(MANIFEST_REFERENCE + """
                SELECT sop_instance_uid, location, final_state, reason FROM r
                WHERE final_state NOT IN ('verified') AND NOT starts_with(final_state, 'excluded_')
                ORDER BY final_state <> 'lost_no_file', location, sop_instance_uid LIMIT $n""", dict(p, n=limit)).fetchall()
        return out
    finally:
        con.close()


def _assert_matches(rec: rc.Reconciliation, ref: dict[str, Any]) -> None:
    assert rec.totals == ref["totals"]
    assert [(s["study_instance_uid"], s["planned"], s["stored"], s["verified"], s["excluded"]) for s in rec.studies] \
        == ref["studies"]
    assert rec.problems == ref["problems"] and rec.excluded == ref["excluded"]
    if "manifest_totals" in ref:
        m = rec.manifest
        assert m is not None
        got = sorted((scope == "manifest", k, v) for scope in ("manifest", "not_in_manifest")
                     for k, v in m["totals"][scope].items())
        assert got == sorted(ref["manifest_totals"])
        assert [tuple(r.values()) for r in m["locations"]] == ref["manifest_locations"]
        assert [tuple(r.values()) for r in m["problems"]] == ref["manifest_problems"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _mixed_index(tmp_path_factory.mktemp("kept") / "m.duckdb")


def test_kept_evaluated_and_stale_reconcile_alike(mixed: str, tmp_path: Path) -> None:
    """Evaluated on a read-only index (nothing kept), counted and kept on a writable one, then read from
    the kept states: three times the reconciliation a full evaluation gives; after a write that does
    not keep the states (stale: the fingerprint moved), evaluated again, never the stale states."""
    import shutil

    idx = str(tmp_path / "k.duckdb")
    shutil.copy(mixed, idx)
    ref = _reference(idx)
    states = set(ref["totals"])
    assert {"verified", "not_sent", "stored_unverified", "mismatch", "missing_on_target", "failed",
            "excluded_decision", "awaiting_decision", "deleted_in_source", "update_pending",
            "excluded_corrupt"} <= states, states
    assert ref["manifest_problems"] and any(r[2] == "lost_no_file" for r in ref["manifest_problems"])
    assert any(r[1] == "excluded_deleted" for r in ref["manifest_totals"])
    assert any(not r[0] for r in ref["manifest_totals"])  # planned instances the manifest does not know

    evaluated = _reconcile(idx, read_only=True)
    assert evaluated.states == "counted"
    con = open_index(idx, read_only=True)
    try:  # nothing kept by a read-only reconcile, no temporary table left behind
        assert status_counts.kept(con, T) is None
    finally:
        con.close()
    counted = _reconcile(idx, read_only=False)
    kept = _reconcile(idx, read_only=True)
    assert (counted.states, kept.states) == ("counted and kept", "kept")
    for rec in (evaluated, counted, kept):
        _assert_matches(rec, ref)
    assert _comparable(evaluated) == _comparable(counted) == _comparable(kept)

    # stale: a verification recorded behind the kept states' back (no keeping): they no longer hold
    con = open_index(idx)
    try:
        con.execute("""
            INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, sop_hash)
            SELECT target, sop_instance_uid, 'retrieve', TIMESTAMP '2026-11-08', 'mismatch', 'later, unkept', sop_hash_of(sop_instance_uid)
            FROM transfers WHERE outcome = 'stored' AND target = $t ORDER BY sop_instance_uid LIMIT 30""", {"t": T})
    finally:
        con.close()
    ref2 = _reference(idx)
    assert ref2["totals"] != ref["totals"]
    stale = _reconcile(idx, read_only=True)
    assert stale.states == "counted"
    _assert_matches(stale, ref2)
    with rc.open_for(idx, Target.parse(T)) as con:  # the CLI's open: read-write to keep the evaluation
        again = rc.reconcile(con, Target.parse(T), query_target=False, limit=50)
    assert again.states == "counted and kept"
    _assert_matches(again, ref2)
    with rc.open_for(idx, Target.parse(T)) as con:
        assert con.execute("SELECT current_setting('access_mode')").fetchone()[0] == "read_only"
        last = rc.reconcile(con, Target.parse(T), query_target=False, limit=50)
    assert last.states == "kept"
    assert _comparable(last) == _comparable(stale)


def test_kept_states_moved_by_a_writer_reconcile_as_evaluated(mixed: str, tmp_path: Path) -> None:
    """A batch recorded through status_counts.keeping (as a send's journal merge does) moves the kept
    states; reconcile then reads them and shows what a full evaluation shows."""
    import shutil

    idx = str(tmp_path / "w.duckdb")
    shutil.copy(mixed, idx)
    _reconcile(idx, read_only=False)  # counted and kept
    con = open_index(idx)
    try:
        sops = [r[0] for r in con.execute(
            "SELECT sop_instance_uid FROM plan WHERE disposition = 'send' ORDER BY sop_instance_uid LIMIT 200").fetchall()]
        con.execute("BEGIN TRANSACTION")
        with status_counts.keeping(con, T, sops):
            con.execute("""
                INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, sop_hash)
                SELECT 1, $t, p.sop_instance_uid, p.path, TIMESTAMP '2026-11-09', TIMESTAMP '2026-11-09',
                       CASE WHEN hash(p.sop_instance_uid) % 4 = 0 THEN 'failed' ELSE 'stored' END, sop_hash_of(p.sop_instance_uid)
                FROM plan p WHERE p.sop_instance_uid IN (SELECT unnest($s::VARCHAR[]))""", {"t": T, "s": sops})
        con.execute("COMMIT")
    finally:
        con.close()
    rec = _reconcile(idx, read_only=True)
    assert rec.states == "kept"
    _assert_matches(rec, _reference(idx))


def test_reconcile_from_kept_states_completes_in_a_tight_memory_limit(tmp_path: Path) -> None:
    """From the kept states, an index larger than DuckDB's memory limit reconciles (its studies in one
    streaming pass, its lists by key) and gives what it gives with room to spare. (The full evaluation
    that keeps them needs more: macro final_states, sql/schema.)"""
    idx = _mixed_index(tmp_path / "t.duckdb", rows=400_000, manifest=False)
    counted = _reconcile(idx, read_only=False)
    assert counted.states == "counted and kept"
    assert Path(idx).stat().st_size > 96 * 2**20
    tight = _reconcile(idx, read_only=True, memory_limit="96MB")
    assert tight.states == "kept"
    roomy = _comparable(counted)
    assert _comparable(tight) == roomy
    assert roomy["instances"] > 380_000 and len(roomy["studies"]) > 2_000 and len(roomy["problems"]) == 50

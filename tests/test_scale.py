"""The index at hospital scale (issue 12): the scalable SQL gives the same results; bounded memory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pacscopy.check.checks import run_checks
from pacscopy.index import open_index
from pacscopy.send.transcode import plan_params
from pacscopy.testing import scale

from .conftest import assert_run_totals

REFERENCE = Path(__file__).with_name("build_plan_reference.sql")
PLAN = "SELECT * FROM plan_auto ORDER BY sop_instance_uid"


def _reference_plan(con) -> list[tuple]:
    """plan_auto as the window-over-whole-rows formulation computes it (tests/build_plan_reference.sql)."""
    from pacscopy.index import split_statements

    params = plan_params()
    con.execute("BEGIN TRANSACTION")
    for stmt in split_statements(REFERENCE.read_text()):
        con.execute(stmt, {k: v for k, v in params.items() if f"${k}" in stmt})
    got = con.execute(PLAN).fetchall()
    con.execute("ROLLBACK")
    return got


def _mixed(con) -> None:
    """Every tie the copy choice breaks: triples, suspect/missing/corrupt copies, raw datasets,
    implicit VR copies, later scans, a probed target that refuses some classes and syntaxes."""
    con.execute("""
        UPDATE files SET sop_instance_uid = (SELECT f2.sop_instance_uid FROM files f2
                                             WHERE f2.mtime_ns = files.mtime_ns - 2)
        WHERE mtime_ns % 100 = 2;
        UPDATE files SET sop_hash = sop_hash_of(sop_instance_uid) WHERE mtime_ns % 100 = 2;  -- its key (0031)
        UPDATE files SET status = 'suspect', reason = 'zero_block' WHERE mtime_ns % 7 = 1;
        UPDATE files SET status = 'missing' WHERE mtime_ns % 11 = 2;
        UPDATE files SET status = 'corrupt', reason = 'truncated' WHERE mtime_ns % 13 = 0;
        UPDATE files SET has_meta = false WHERE mtime_ns % 5 = 0;
        UPDATE files SET transfer_syntax_uid = '1.2.840.10008.1.2' WHERE mtime_ns % 3 = 0;
        UPDATE files SET scanned_at = scanned_at + INTERVAL 1 DAY WHERE mtime_ns % 4 = 1;
        UPDATE files SET dataset_xxh3 = md5(path) WHERE mtime_ns % 300 = 2;
        INSERT INTO target_capabilities (target, sop_class_uid, transfer_syntax_uid, accepted) VALUES
            ('T@h:1', '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', true),
            ('T@h:1', '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2', true),
            ('T@h:1', '1.2.840.10008.5.1.4.1.1.4', '1.2.840.10008.1.2.1', false);
    """)


@pytest.mark.parametrize("mixed", [False, True])
def test_plan_equals_the_reference_on_a_generated_archive(tmp_path: Path, mixed: bool) -> None:
    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 6000)
        if mixed:
            _mixed(con)
        run_checks(con)
        got = con.execute(PLAN).fetchall()
        assert len(got) > 5000
        dispositions = {r[2] for r in got}
        assert {"send", "hold", "quarantine"} <= dispositions
        if mixed:
            assert "blocked" in dispositions and any(r[11] for r in got)  # a transcode_to
            assert any(r[4] > 2 for r in got)  # triples
        assert got == _reference_plan(con)
    finally:
        con.close()


def test_plan_equals_the_reference_on_the_planted_archive(scanned: Path, tmp_path: Path) -> None:
    idx = tmp_path / "planted.duckdb"
    shutil.copy(scanned, idx)
    con = open_index(str(idx))
    try:
        run_checks(con)
        got = con.execute(PLAN).fetchall()
        assert {r[2] for r in got} >= {"send", "hold", "quarantine"}
        assert got == _reference_plan(con)
    finally:
        con.close()


def test_generated_archive_has_the_shapes(tmp_path: Path) -> None:
    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 3000, chunk=1000)  # three transactions, as make-index fills 5 M files each
        n, path_len, uid_len, dups, corrupt, studies, series = con.execute("""
            SELECT count(*), avg(length(path)), avg(length(sop_instance_uid)),
                   count(*) - count(DISTINCT sop_instance_uid), count(*) FILTER (WHERE status = 'corrupt'),
                   count(DISTINCT study_instance_uid), count(DISTINCT series_instance_uid)
            FROM files""").fetchone()
        assert n == 3000 and 85 <= path_len <= 100 and 48 <= uid_len <= 60
        assert dups == 33 and corrupt == 3  # 1 % + 0.1 % duplicates, 0.1 % corrupt
        assert studies == 20 and series == 60
        assert con.execute("SELECT count(*) FROM transfers").fetchone()[0] > 1000
        assert con.execute("SELECT count(*) FROM verifications").fetchone()[0] > 500
    finally:
        con.close()
    assert_run_totals(tmp_path / "s.duckdb")  # the run's totals so far, added chunk by chunk


def test_reconcile_holds_only_what_it_shows_in_memory(tmp_path: Path) -> None:
    """Only the first `limit` problems and exclusions reach Python (a top-N in SQL), not every
    instance's final state; the totals still count every instance."""
    import tracemalloc

    from pacscopy.dicom.peer import Target
    from pacscopy.verify.reconcile import reconcile

    idx = str(tmp_path / "s.duckdb")
    con = open_index(idx, create=True)
    try:
        scale.fill(con, 40000, sent=0.5, verified=0.5)
        run_checks(con)
    finally:
        con.close()
    con = open_index(idx, read_only=True, memory_limit="256MB")
    try:
        tracemalloc.start()
        rec = reconcile(con, Target.parse(scale.TARGET), query_target=False, limit=20)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        con.close()
    assert rec.instances > 35000 and rec.totals.get("not_sent", 0) > 15000 and sum(rec.totals.values()) == rec.instances
    assert len(rec.problems) == 20 and len(rec.excluded) == 20
    assert [p["sop_instance_uid"] for p in rec.problems] == sorted(p["sop_instance_uid"] for p in rec.problems) \
        or [p["study_instance_uid"] for p in rec.problems] == sorted(p["study_instance_uid"] for p in rec.problems)
    assert peak < 4 * 2**20, f"reconcile held {peak / 2**20:.1f} MB in Python"


def test_status_equals_the_reference(tmp_path: Path) -> None:
    """status's one narrow pass over the target's transfers counts what the stored/transfer_latest views did."""
    from dataclasses import asdict

    from pacscopy.send import status_counts
    from pacscopy.send.queue import progress_from

    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 20000, sent=0.7)
        run_checks(con)
        con.execute("""
            UPDATE transfers SET outcome = 'warning' WHERE transfer_id % 50 = 0;
            -- a later failed retry of a stored instance, a stored retry of a failed one, another target
            INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, error, sop_hash)
            SELECT 1, target, sop_instance_uid, path, finished + INTERVAL 1 HOUR, finished + INTERVAL 1 HOUR,
                   CASE WHEN outcome = 'failed' THEN 'stored' ELSE 'failed' END, 'timeout', sop_hash_of(sop_instance_uid)
            FROM transfers WHERE transfer_id % 70 = 0;
            INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, sop_hash)
            SELECT 2, 'OTHER@h:1', sop_instance_uid, path, started, finished, 'failed', sop_hash_of(sop_instance_uid) FROM transfers
            WHERE transfer_id % 3 = 0;
        """)
        p = {"target": scale.TARGET}
        got = asdict(progress_from(status_counts.count(con, scale.TARGET), None))
        # the warnings come from the same pass over final_states as the counts (before: a second pass)
        assert got["warnings"] == con.execute("""
            SELECT count(*) FILTER (WHERE with_warning) FROM stored_content s
            JOIN final_states($target) f USING (sop_instance_uid)
            WHERE s.target = $target AND f.final_state IN ('verified', 'stored_unverified')""", p).fetchone()[0] > 50
        # issue 14: every planned instance counted once by its final state; the figures add up to the plan
        parts = ("stored_current", "verify_problems", "updates_pending", "stale", "deleted_in_source",
                 "awaiting_decision", "failed", "not_sent", "excluded")
        assert sum(got[k] for k in parts) == got["in_plan"] == con.execute("SELECT count(*) FROM plan").fetchone()[0]
        assert all(got[k] >= 0 for k in parts)
        # the generated transfers record what a send records (source_xxh3, the header sent): current
        assert got["stored_current"] > 5000 and got["verified"] > 2000 and got["failed"] > 5
    finally:
        con.close()


def test_a_budget_too_small_is_one_line_and_writes_nothing(tmp_path: Path, cli, monkeypatch) -> None:
    idx = tmp_path / "s.duckdb"
    con = open_index(str(idx), create=True)
    try:
        scale.fill(con, 20000)
    finally:
        con.close()
    for limit, says in (("3MB", "too small to open it"), ("24MB", "the memory budget is too small for this work: DuckDB may use 24MB")):
        monkeypatch.setenv("PACSCOPY_MEMORY_LIMIT", limit)
        r = cli("check", "-q", "--index", idx)
        assert r.code == 2 and says in r.err and "damaged" not in r.err, r.err
        assert len(r.err.strip().splitlines()) == 1
    monkeypatch.delenv("PACSCOPY_MEMORY_LIMIT")
    con = open_index(str(idx), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM plan_auto").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM findings").fetchone()[0] == 0
    finally:
        con.close()


def _manifest_compare_0008(con) -> list[tuple]:
    """The rows with differences of manifest_compare as migration 0008 defined it (lists for every joined row)."""
    sql = (Path(__file__).parent.parent / "sql" / "schema" / "0008_manifest.sql").read_text()
    view = sql[sql.index("CREATE VIEW manifest_compare AS"):].replace("CREATE VIEW manifest_compare AS", "")
    return con.execute(f"SELECT * FROM ({view.strip().rstrip(';')}) WHERE len(uids) + len(demographics) > 0 "
                       "ORDER BY path").fetchall()


def test_manifest_compare_lists_only_the_files_that_differ(tmp_path: Path) -> None:
    """0014's manifest_compare: a narrow hash pre-filter, then the exact comparisons on the few
    candidates; the same lists as 0008's view for every file that differs, no row for one that agrees."""
    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 6000)
        con.execute("""
            UPDATE files SET patient_sex = lower(patient_sex) WHERE mtime_ns % 9 = 4;  -- no difference (upper)
            INSERT INTO manifest BY NAME
            SELECT *, manifest_sop_key(sop_instance_uid) AS sop_key,  -- the keys manifest load stores (0019)
                   manifest_values_hash(patient_id, issuer_of_patient_id, patient_name, patient_birth_date,
                                        patient_sex, accession_number, study_date, study_instance_uid,
                                        series_instance_uid, sop_class_uid) AS cmp_hash
            FROM (
            SELECT sop_instance_uid, study_instance_uid,
                   CASE WHEN mtime_ns % 97 = 5 THEN series_instance_uid || '.9' ELSE series_instance_uid END
                       AS series_instance_uid,
                   CASE WHEN mtime_ns % 89 = 6 THEN '1.2.3' ELSE sop_class_uid END AS sop_class_uid,
                   CASE WHEN mtime_ns % 53 = 7 THEN 'MERGED' || patient_id
                        WHEN mtime_ns % 59 = 8 THEN NULL ELSE patient_id END AS patient_id,  -- NULL: no correction
                   CASE WHEN mtime_ns % 61 = 9 THEN 'ISSUER' END AS issuer_of_patient_id,
                   CASE WHEN mtime_ns % 31 = 2 THEN 'CORRECTED^NAME'
                        WHEN mtime_ns % 37 = 3 THEN lower(patient_name) || '^^'  -- same name after norm_name
                        ELSE patient_name END AS patient_name,
                   CASE WHEN mtime_ns % 41 = 4 THEN '19000101' ELSE patient_birth_date END AS patient_birth_date,
                   upper(patient_sex) AS patient_sex,
                   CASE WHEN mtime_ns % 43 = 5 THEN 'ACC-X' ELSE accession_number END AS accession_number,
                   CASE WHEN mtime_ns % 47 = 6 THEN '20000101' ELSE study_date END AS study_date,
                   modality, volume AS location, 'online' AS state, row_number() OVER () AS source_row
            FROM (SELECT * FROM files WHERE sop_instance_uid IS NOT NULL
                  QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY path) = 1))
        """)
        got = con.execute("SELECT * FROM manifest_compare ORDER BY path").fetchall()
        ref = _manifest_compare_0008(con)
        assert len(ref) > 500
        attrs = {a["attribute"] for r in ref for a in r[4] + r[5]}
        assert attrs == {"PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "AccessionNumber",
                         "StudyDate", "SeriesInstanceUID", "SOPClassUID"}
        assert got == ref
        joined = con.execute("SELECT count(*) FROM files JOIN manifest USING (sop_instance_uid) "
                             "WHERE status IN ('ok', 'suspect', 'corrupt')").fetchone()[0]
        assert joined > 2 * len(got)  # the files that agree have no row
    finally:
        con.close()


def _status_in_plan(cli, idx: Path) -> tuple[int, str]:
    import re

    r = cli("status", "--target", scale.TARGET, "--index", idx)
    assert r.code == 0, r.err
    m = re.search(r"(\d+) instances in the plan", r.out)
    assert m, r.out
    return int(m.group(1)), r.out


def test_status_gives_its_kept_figures_only_while_the_index_is_unchanged(tmp_path: Path, cli) -> None:
    """On an index it cannot write now (another process reads it), status keeps its figures beside it (<index>.run/status-*.json) with a
    stamp of the index file; a later status shows them without counting only if nothing wrote to the
    index since. (An index it can write keeps them in table status_counts: tests/test_status_counts.py.)"""
    import json
    import stat

    from pacscopy.send.status_cache import cache_file

    from .test_status_counts import another_reader

    idx = tmp_path / "s.duckdb"
    con = open_index(str(idx), create=True)
    try:
        scale.fill(con, 3000)
        run_checks(con)
    finally:
        con.close()
    reader = another_reader(idx)  # status cannot keep its count in the index now: it keeps it beside it
    reader.__enter__()
    n, first = _status_in_plan(cli, idx)
    assert n > 2500
    cache = cache_file(str(idx), scale.TARGET)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # plant a figure no count gives: shown only while the index is unchanged (read-only opens change nothing)
    data = json.loads(cache.read_text())
    data["figures"] = {"not_sent": ["not_sent", 424242, 0, 0]}
    cache.write_text(json.dumps(data))
    assert _status_in_plan(cli, idx)[0] == 424242
    assert _status_in_plan(cli, idx)[0] == 424242
    # any write to the index: counted again, the planted figure is gone
    reader.__exit__(None, None, None)
    con = open_index(str(idx))
    try:
        con.execute("""INSERT INTO decisions (sop_instance_uid, action, note)
                       SELECT sop_instance_uid, 'skip', 'test' FROM plan WHERE disposition = 'send' LIMIT 1""")
    finally:
        con.close()
    reader = another_reader(idx)
    reader.__enter__()
    again, out = _status_in_plan(cli, idx)
    assert again == n and out != first  # one more excluded, one fewer left
    # a stale or foreign cache file is never trusted
    data = json.loads(cache.read_text())
    data["stamp"]["index"][1] += 1
    data["figures"] = {"not_sent": ["not_sent", 424242, 0, 0]}
    cache.write_text(json.dumps(data))
    assert _status_in_plan(cli, idx)[0] == n
    reader.__exit__(None, None, None)


def test_reconcile_streams_its_studies(tmp_path: Path) -> None:
    """The per-study table (one row per study) is spooled as it is read and written out as it is read
    back: 40,000 studies reconcile and become JSON within a few MB of Python memory (one dict per
    study held ~40 MB before)."""
    import json
    import stat
    import tracemalloc

    from pacscopy.dicom.peer import Target
    from pacscopy.output.outfile import write_private
    from pacscopy.verify.reconcile import json_chunks, reconcile, to_html, to_text

    idx = str(tmp_path / "s.duckdb")
    con = open_index(idx, create=True)
    try:
        scale.fill(con, 40000, sent=0.5, verified=0.5)
        run_checks(con)
        con.execute("UPDATE plan_auto SET study_instance_uid = sop_instance_uid")  # one study per instance
        studies = con.execute("SELECT count(DISTINCT study_instance_uid) FROM plan").fetchone()[0]
    finally:
        con.close()
    assert studies > 35000
    out = tmp_path / "rec.json"
    con = open_index(idx, read_only=True, memory_limit="256MB")
    try:
        tracemalloc.start()
        rec = reconcile(con, Target.parse(scale.TARGET), query_target=False, limit=20)
        write_private(out, json_chunks(rec))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        con.close()
    assert peak < 4 * 2**20, f"reconcile and its JSON held {peak / 2**20:.1f} MB in Python"
    spool = Path(rec.studies.path)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600  # patient IDs: owner-only
    data = json.loads(out.read_text())
    assert len(data["studies"]) == len(rec.studies) == studies
    assert data["studies"][0] == next(iter(rec.studies)) and data["instances"] == rec.instances
    assert sorted(data) == sorted(rec.__dataclass_fields__)
    assert to_text(rec).startswith(f"reconciliation against {scale.TARGET}")
    assert to_html(rec).count("<tr") < 2000  # the page shows the first 500 studies
    rec.studies.close()
    assert not spool.exists()


def test_reconcile_computes_the_final_states_once_and_gives_the_same_figures(tmp_path: Path) -> None:
    """reconcile evaluates the final states once (on a read-only index, into a temporary table
    status_instances: pacscopy/send/status_counts.py evaluate()) for its totals, studies and problem
    lists: the same figures as final_states queried directly, nothing left behind."""
    from pacscopy.dicom.peer import Target
    from pacscopy.verify.reconcile import PROBLEMS, reconcile

    idx = str(tmp_path / "s.duckdb")
    con = open_index(idx, create=True)
    try:
        scale.fill(con, 6000, sent=0.5, verified=0.5)
        run_checks(con)
    finally:
        con.close()
    con = open_index(idx, read_only=True)
    try:
        p = {"target": scale.TARGET}
        rec = reconcile(con, Target.parse(scale.TARGET), query_target=False, limit=5)
        direct = dict(con.execute("SELECT final_state, count(*) FROM final_states($target) GROUP BY 1", p).fetchall())
        assert rec.totals == direct and rec.totals.get("verified", 0) > 1000
        studies = con.execute("""
            SELECT f.study_instance_uid, count(*) FILTER (WHERE f.disposition = 'send' OR s.sop_instance_uid IS NOT NULL),
                   count(s.sop_instance_uid), count(*) FILTER (WHERE f.final_state = 'verified')
            FROM final_states($target) f
            LEFT JOIN stored_content s ON s.target = $target AND s.sop_instance_uid = f.sop_instance_uid
            WHERE f.study_instance_uid IS NOT NULL GROUP BY 1 ORDER BY 1""", p).fetchall()
        assert [(s["study_instance_uid"], s["planned"], s["stored"], s["verified"]) for s in rec.studies] == studies
        assert len(rec.problems) == 5 and all(x["final_state"] in PROBLEMS for x in rec.problems)
        assert "on_record" not in rec.problems[0]
        assert rec.states == "counted"
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0
    finally:
        con.close()

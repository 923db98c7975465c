"""The books evaluated narrow (schemas 0023 and 0027, issue 12) give exactly the rows of 0017/0021's bodies.

pacscopy.testing.books_reference gives the bodies 0023 replaced (stored_content_of, outgoing_of, books_of,
final_states_of as 0017 and 0021 defined them, renamed *_0021). On a generated archive where every
final state and every kind of reason occurs, the new macros must give the same rows (EXCEPT ALL both
ways), whole and keyed, and the status figures summed from them must be the reference's.
"""

from __future__ import annotations

import re
from pathlib import Path

from pacscopy.check.checks import run_checks
from pacscopy.index import load_sql, open_index, split_statements, sql_dir
from pacscopy.testing import scale
from pacscopy.testing.books_reference import reference_macros

T = {"t": scale.TARGET}


def _every_state(con) -> None:
    """From a scale archive (stored, verified by C-FIND, failed, not sent, corrupt, conflicting
    copies awaiting a decision) to one where every state and reason occurs."""
    for stmt in split_statements("""
        -- warnings; later failed retries of stored instances; stored retries of failed ones
        UPDATE transfers SET outcome = 'warning' WHERE transfer_id % 50 = 0;
        INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, error, sop_hash)
        SELECT 1, target, sop_instance_uid, path, finished + INTERVAL 1 HOUR, finished + INTERVAL 1 HOUR,
               CASE WHEN outcome = 'failed' THEN 'stored' ELSE 'failed' END, 'timeout', sop_hash_of(sop_instance_uid)
        FROM transfers WHERE transfer_id % 70 = 0;
        -- a failed attempt without a status nor an error (no reason: not_sent)
        INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, sop_hash)
        SELECT 1, $t, sop_instance_uid, path, TIMESTAMP '2026-11-04', TIMESTAMP '2026-11-04', 'failed', sop_hash_of(sop_instance_uid)
        FROM plan_auto WHERE disposition = 'send' AND hash(sop_instance_uid) % 1000 >= 600
          AND hash(sop_instance_uid) % 53 = 0;
        -- another target's books
        INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, sop_hash)
        SELECT 2, 'OTHER@h:1', sop_instance_uid, path, started, finished, 'stored', sop_hash_of(sop_instance_uid) FROM transfers
        WHERE transfer_id % 3 = 0;
        -- updates: stored again as updates, some proven by a retrieve, some stale, some unproven
        INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, source_xxh3,
                               sent_patient_id, sent_header, is_update, sop_hash)
        SELECT 3, target, sop_instance_uid, path, finished + INTERVAL 3 HOUR, finished + INTERVAL 3 HOUR, 'stored',
               source_xxh3, sent_patient_id, sent_header, true, sop_hash_of(sop_instance_uid)
        FROM transfers WHERE transfer_id % 29 = 0 AND outcome = 'stored' AND run_id = 1;
        INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, sop_hash)
        SELECT target, sop_instance_uid, 'retrieve', finished + INTERVAL 4 HOUR,
               CASE WHEN transfer_id % 3 = 0 THEN 'mismatch' ELSE 'verified' END, 'test ' || transfer_id, sop_hash_of(sop_instance_uid)
        FROM transfers WHERE run_id = 3 AND transfer_id % 2 = 0;
        -- retrieve-backs after the first store, finds and commits after them (disputed), failed checks
        INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, sop_hash)
        SELECT target, sop_instance_uid, 'retrieve', finished + INTERVAL 2 HOUR,
               CASE WHEN transfer_id % 2 = 0 THEN 'mismatch' ELSE 'verified' END, 'test', sop_hash_of(sop_instance_uid)
        FROM transfers WHERE transfer_id % 41 = 0 AND outcome = 'stored' AND run_id = 1;
        INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, sop_hash)
        SELECT target, sop_instance_uid, 'commit', finished + INTERVAL 5 HOUR,
               CASE WHEN transfer_id % 2 = 0 THEN 'missing_on_target' ELSE 'verified' END, NULL, sop_hash_of(sop_instance_uid)
        FROM transfers WHERE transfer_id % 37 = 0 AND outcome = 'stored' AND run_id = 1;
        INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, sop_hash)
        SELECT target, sop_instance_uid, 'find', finished + INTERVAL 6 HOUR, 'missing_on_target', 'gone?', sop_hash_of(sop_instance_uid)
        FROM transfers WHERE transfer_id % 31 = 0 AND outcome = 'stored' AND run_id = 1;
        INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, sop_hash)
        SELECT target, sop_instance_uid, 'commit', finished + INTERVAL 7 HOUR, 'failed', 'no commitment service', sop_hash_of(sop_instance_uid)
        FROM transfers WHERE transfer_id % 23 = 0 AND outcome = 'stored';
        -- decisions: skip, hold, send, and keep/remove on instances deleted in the source
        INSERT INTO decisions (sop_instance_uid, action, note)
        SELECT sop_instance_uid, CASE hash(sop_instance_uid) % 3 WHEN 0 THEN 'skip' WHEN 1 THEN 'hold' ELSE 'send' END,
               'test'
        FROM plan_auto WHERE hash(sop_instance_uid) % 97 = 0;
        -- vanished files: some copies, some every copy of an instance (deleted in the source)
        UPDATE files SET status = 'missing' WHERE hash(path) % 89 = 0;
        UPDATE files SET status = 'missing'
        WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM transfers WHERE transfer_id % 43 = 0);
        INSERT OR REPLACE INTO decisions (sop_instance_uid, action, note)
        SELECT sop_instance_uid, CASE WHEN transfer_id % 2 = 0 THEN 'keep' ELSE 'remove' END, 'deleted test'
        FROM transfers WHERE transfer_id % 86 = 0;
        -- changed sources: other bytes (with and without a recorded attribute comparison), other headers
        UPDATE files SET dataset_xxh3 = 'changed' || dataset_xxh3, study_description = 'other'
        WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM transfers WHERE transfer_id % 47 = 0);
        UPDATE files SET dataset_xxh3 = 'bytes' || dataset_xxh3
        WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM transfers WHERE transfer_id % 59 = 0);
        INSERT INTO attr_changes (from_xxh3, to_xxh3, changed, path, recorded_at)
        SELECT t.source_xxh3, f.dataset_xxh3, 'SeriesDescription', f.path, now()::TIMESTAMP
        FROM transfers t JOIN files f ON f.path = t.path
        WHERE t.transfer_id % 118 = 0 AND t.source_xxh3 IS NOT NULL AND f.dataset_xxh3 IS NOT NULL;
        -- a PatientID map (id_changed) and the old PACS's database correcting names and IDs
        INSERT INTO patient_map (old_patient_id, new_patient_id, issuer_of_patient_id)
        SELECT DISTINCT patient_id, 'NEW-' || patient_id, 'HOSP' FROM files WHERE hash(patient_id) % 61 = 0;
        INSERT INTO manifest (sop_instance_uid, study_instance_uid, series_instance_uid, sop_class_uid, patient_id,
                              issuer_of_patient_id, patient_name, patient_birth_date, patient_sex, accession_number,
                              study_date, modality, sop_key, cmp_hash)
        SELECT sop_instance_uid, study_instance_uid, series_instance_uid, sop_class_uid,
               CASE WHEN hash(path) % 2 = 0 THEN 'M-' || patient_id ELSE patient_id END, issuer_of_patient_id,
               'Corrected^Name', patient_birth_date, patient_sex, accession_number, study_date, modality,
               manifest_sop_key(sop_instance_uid), 0
        FROM files WHERE hash(path) % 67 = 0 AND status = 'ok';
        -- a plan path whose file is now another instance's, and one with no file at all
        UPDATE plan_auto SET path = (SELECT min(path) FROM files WHERE status = 'ok')
        WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM transfers WHERE transfer_id % 211 = 0);
        UPDATE plan_auto SET path = '/nowhere/' || sop_instance_uid
        WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM transfers WHERE transfer_id % 223 = 0);
    """):
        con.execute(stmt, T if "$t" in stmt else {})


def _same(con, new: str, old: str, params: dict) -> int:
    params = params if "$t" in new + old else {}
    n = con.execute(f"SELECT count(*) FROM ({new})", params).fetchone()[0]
    for a, b in ((new, old), (old, new)):
        assert con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})", params).fetchone()[0] == 0, (a, b)
    return n


def test_the_narrow_books_give_the_rows_of_0021(tmp_path: Path) -> None:
    con = open_index(str(tmp_path / "n.duckdb"), create=True)
    try:
        scale.fill(con, 20000, sent=0.7, verified=0.5)
        run_checks(con)
        _every_state(con)
        for stmt in reference_macros():
            con.execute(stmt)
        states = dict(con.execute("SELECT final_state, count(*) FROM final_states($t) GROUP BY 1", T).fetchall())
        assert set(states) >= {"verified", "mismatch", "missing_on_target", "disputed", "stored_unverified",
                               "update_pending", "stale_on_target", "deleted_in_source", "excluded_decision",
                               "excluded_held", "awaiting_decision", "failed", "not_sent", "excluded_corrupt"}, states
        contents = {r[0] for r in con.execute("SELECT DISTINCT content FROM books($t)", T).fetchall()}
        assert contents >= {None, "current", "changed", "deleted_in_source", "stale", "update_verified",
                            "update_unproven"}, contents
        reasons = " ".join(r[0] for r in con.execute(
            "SELECT DISTINCT content_why FROM books($t) WHERE content_why IS NOT NULL", T).fetchall())
        for part in ("SeriesDescription", "StudyDescription", "dataset bytes", "PatientID", "(pacscopy map)",
                     "the old PACS's database", "PatientName"):
            assert part in reasons, part
        for new, old in (("SELECT * FROM final_states_of($t, false)", "SELECT * FROM final_states_of_0021($t, false)"),
                         ("SELECT * FROM books_of($t, false)", "SELECT * FROM books_of_0021($t, false)"),
                         ("SELECT * FROM outgoing_of(false)", "SELECT * FROM outgoing_of_0021(false)"),
                         ("SELECT * FROM final_states_of('OTHER@h:1', false)",
                          "SELECT * FROM final_states_of_0021('OTHER@h:1', false)")):
            assert _same(con, new, old, T) > 10000
        # keyed: every 7th instance, the rows of the whole evaluation for those instances. (0017's keyed
        # outgoing_of read only the keyed instances' files: a plan path holding another instance's file
        # (here 1 in 211 stored) found no file keyed, and not the one the whole evaluation compares with.)
        con.execute("INSERT INTO status_keys SELECT sop_instance_uid FROM plan_auto WHERE hash(sop_instance_uid) % 7 = 0")
        keys = "WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys)"
        for m in ("final_states_of", "books_of"):
            assert _same(con, f"SELECT * FROM {m}($t, true)", f"SELECT * FROM {m}_0021($t, false) {keys}", T) > 1000
        con.execute("DELETE FROM status_keys")
        # status_instances' rows: the old evaluation's (0020's instance_states on the 0021 bodies)
        new = load_sql("ops/status/instance_states").strip().rstrip(";")
        old = """SELECT $t AS target, md5_number(f.sop_instance_uid) AS sop_key, f.final_state,
                        coalesce(a.size, 0)::BIGINT AS bytes, coalesce(s.with_warning, false) AS warning
                 FROM final_states_of_0021($t, false) f
                 LEFT JOIN (SELECT sop_instance_uid, size FROM plan_auto) a USING (sop_instance_uid)
                 LEFT JOIN (SELECT sop_instance_uid, with_warning FROM stored_content_of_0021(false) WHERE target = $t) s
                        USING (sop_instance_uid)"""
        assert _same(con, new.replace("$target", "$t"), old, T) > 10000
    finally:
        con.close()


def test_the_books_in_slices_give_the_rows_of_the_whole(tmp_path: Path) -> None:
    """Schema 0029: evaluated slice by slice (hash of the SOPInstanceUID modulo N, the session's
    pacscopy_slices/pacscopy_slice), the books give, slice after slice, exactly the whole evaluation's
    rows (0021's bodies), including a plan path that holds another instance's file (which may fall in
    another slice) and the manifest's corrections; the figures and the kept states of a sliced count
    are the whole count's, and no slice is left set after it."""
    from pacscopy.send import status_counts

    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 20000, sent=0.7, verified=0.5)
        run_checks(con)
        _every_state(con)
        for stmt in reference_macros():
            con.execute(stmt)
        # the reference: 0021's bodies, and for the wide rows (key, size, warning) the whole evaluation
        for m, ref in (("final_states_of", "SELECT * FROM final_states_of_0021($t, false)"),
                       ("books_of", "SELECT * FROM books_of_0021($t, false)"),
                       ("final_states_wide_of", "SELECT * FROM final_states_wide_of($t, false)")):
            con.execute(f"CREATE OR REPLACE TEMP TABLE sliced AS SELECT * FROM {m}($t, false) LIMIT 0", T)
            con.execute("SET VARIABLE pacscopy_slices = 7")
            for i in range(7):
                con.execute("SET VARIABLE pacscopy_slice = $i", {"i": i})
                n = con.execute(f"INSERT INTO sliced SELECT * FROM {m}($t, false)", T).fetchone()[0]
                assert 1500 < n < 4500, (m, i, n)  # a seventh of ~20,000 instances each
            con.execute("RESET VARIABLE pacscopy_slices")
            con.execute("RESET VARIABLE pacscopy_slice")
            con.execute(f"CREATE OR REPLACE TEMP TABLE whole AS {ref}", T)
            assert _same(con, "SELECT * FROM sliced", "SELECT * FROM whole", {}) > 19000
        # through status_counts: 5 slices for the kept states and the figures, as one pass gives them
        whole_counts = status_counts.count(con, scale.TARGET)
        status_counts.evaluate(con, scale.TARGET)
        con.execute("CREATE OR REPLACE TEMP TABLE whole AS SELECT * FROM temp.main.status_instances")
        status_counts.drop_evaluated(con)
        real = status_counts.slice_count
        status_counts.slice_count = lambda c: 5  # type: ignore[assignment]
        try:
            assert status_counts.count(con, scale.TARGET) == whole_counts
            status_counts.evaluate(con, scale.TARGET)
        finally:
            status_counts.slice_count = real  # type: ignore[assignment]
        assert _same(con, "SELECT * FROM temp.main.status_instances", "SELECT * FROM whole", {}) > 10000
        status_counts.drop_evaluated(con)
        assert con.execute("SELECT getvariable('pacscopy_slices'), getvariable('pacscopy_slice')").fetchone() \
            == (None, None)
        assert con.execute("SELECT count(*) FROM plan").fetchone()[0] > 19000  # no slice left: the whole plan
        # the number of slices from the memory limit: 2 for ~20,000 instances at the least slice (10,000)
        real_per = status_counts.SLICE_INSTANCES_PER_MIB
        status_counts.SLICE_INSTANCES_PER_MIB = 1  # type: ignore[misc]
        try:
            assert status_counts.slice_count(con) == 2
            assert status_counts.count(con, scale.TARGET) == whole_counts
            # an index not migrated to 0029 (a read-only or lean open of an older pacscopy's index): its
            # books know no slice, so it is counted in one pass, not three times over
            con.execute(re.sub(r"^--[^\n]*\n", "", (sql_dir() / "schema" / "0028_books_plan_pass.sql")
                               .read_text(encoding="utf-8"), flags=re.M))
            view = (sql_dir() / "schema" / "0002_checks.sql").read_text(encoding="utf-8")
            con.execute(view[view.index("CREATE VIEW plan AS"):view.index(";", view.index("CREATE VIEW plan AS"))]
                        .replace("CREATE VIEW", "CREATE OR REPLACE VIEW"))
            con.execute("DROP MACRO in_slice")
            con.execute("DELETE FROM schema_migrations WHERE version = 29")
            assert status_counts.slice_count(con) == 1
            assert status_counts.count(con, scale.TARGET) == whole_counts
        finally:
            status_counts.SLICE_INSTANCES_PER_MIB = real_per  # type: ignore[misc]
    finally:
        con.close()

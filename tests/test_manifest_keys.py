"""The manifest at scale (issue 15): one read of the export into the table, the keys stored at load.

``manifest load`` reads the export straight into the manifest table in one transaction, numbers
the rows in file order, validates in the same transaction and stores per row a 128-bit key of
the SOPInstanceUID and a hash of the compared values (migration 0019); the manifest checks and
``manifest_compare`` join on those instead of UID strings. These tests show the same findings as
the joins on the UIDs, the rows named in file order, the values named as the export wrote them,
and an index with a manifest loaded before 0019 getting its keys.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pacscopy.index import load_sql, open_index
from pacscopy.manifest import load_manifest
from pacscopy.testing import scale

from .conftest import index_before, rows

# The four checks as they were before migration 0019: joins on the SOPInstanceUID strings.
REFERENCE = {
    "manifest_without_file": """
        SELECT m.sop_instance_uid, coalesce(m.location, '(no location recorded)'), m.location
        FROM manifest m
        WHERE m.state IS DISTINCT FROM 'deleted'
          AND NOT EXISTS (SELECT 1 FROM files f WHERE f.sop_instance_uid = m.sop_instance_uid
                                                  AND f.status IN ('ok', 'suspect', 'corrupt'))""",
    "file_without_manifest": """
        SELECT f.sop_instance_uid, f.path, f.volume
        FROM files f
        WHERE f.sop_instance_uid IS NOT NULL AND f.status IN ('ok', 'suspect', 'corrupt')
          AND EXISTS (SELECT 1 FROM manifest)
          AND NOT EXISTS (SELECT 1 FROM manifest m WHERE m.sop_instance_uid = f.sop_instance_uid)""",
    "manifest_deleted": """
        SELECT f.sop_instance_uid, f.path, m.location
        FROM files f JOIN manifest m USING (sop_instance_uid)
        WHERE m.state = 'deleted' AND f.status IN ('ok', 'suspect', 'corrupt')""",
}

# An export of the generated index's instances: every 50th left out (orphans), every 40th marked
# deleted, every 30th with a corrected name, and 300 rows without a file on two tapes.
EXPORT = """
COPY (
    SELECT sop_instance_uid, study_instance_uid, series_instance_uid, sop_class_uid, patient_id,
           CASE WHEN n % 30 = 0 THEN 'CORRECTED^NAME' ELSE patient_name END AS patient_name,
           patient_birth_date, patient_sex, accession_number, study_date, modality,
           volume AS location, CASE WHEN n % 40 = 0 THEN 'deleted' ELSE 'online' END AS state
    FROM (SELECT *, row_number() OVER (ORDER BY sop_instance_uid) AS n
          FROM (SELECT * FROM files WHERE sop_instance_uid IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY path) = 1))
    WHERE n % 50 <> 0
    UNION ALL
    SELECT '1.2.826.0.1.3680043.8.498.77.' || i, NULL, NULL, NULL, 'LOST' || i, NULL, NULL, NULL, NULL, NULL, NULL,
           'TAPE-' || (i % 2), 'offline'
    FROM range(300) t(i)
) TO '{path}' (HEADER, DELIMITER ',')
"""


def _index_with_export(tmp_path: Path, files: int = 6000) -> tuple[Path, Path]:
    idx, csv = tmp_path / "k.duckdb", tmp_path / "export.csv"
    con = open_index(str(idx), create=True)
    try:
        scale.fill(con, files)
        con.execute(EXPORT.replace("{path}", str(csv)))
    finally:
        con.close()
    return idx, csv


def test_checks_on_the_keys_find_what_the_uid_joins_find(tmp_path: Path, cli) -> None:
    idx, csv = _index_with_export(tmp_path)
    assert cli("manifest", "load", csv, "--index", idx).code == 0
    assert cli("check", "manifest_without_file", "file_without_manifest", "manifest_deleted",
               "manifest_mismatch", "-q", "--index", idx).code == 0
    for check, ref in REFERENCE.items():
        got = rows(idx, "SELECT sop_instance_uid, path, group_key FROM findings WHERE check_id = $c ORDER BY ALL",
                   {"c": check})
        want = rows(idx, ref + " ORDER BY ALL")
        assert got == want, check
        assert len(got) >= 80, check  # every kind is planted
    mismatch = rows(idx, "SELECT count(*) FROM findings WHERE check_id = 'manifest_mismatch'")[0][0]
    assert mismatch >= 150
    # the plan reads the manifest the same way: orphans held, deleted skipped
    plan = dict(rows(idx, "SELECT disposition, count(*) FROM plan GROUP BY 1"))
    assert plan.get("skip", 0) >= 80 and plan.get("hold", 0) >= 100


def test_keys_stored_with_every_row(tmp_path: Path) -> None:
    idx, csv = _index_with_export(tmp_path, files=500)
    con = open_index(str(idx))
    try:
        load_manifest(con, csv)
        bad = con.execute("""
            SELECT count(*) FROM manifest
            WHERE sop_key <> manifest_sop_key(sop_instance_uid)
               OR cmp_hash <> manifest_values_hash(patient_id, issuer_of_patient_id, patient_name,
                      patient_birth_date, patient_sex, accession_number, study_date, study_instance_uid,
                      series_instance_uid, sop_class_uid)""").fetchone()
        assert bad == (0,)
        # the loader is the only writer: a row without its keys is refused, not silently unmatched
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO manifest (sop_instance_uid) VALUES ('1.2.3')")
    finally:
        con.close()


def test_rows_numbered_in_file_order_across_row_groups(tmp_path: Path, cli) -> None:
    """A Parquet export of many row groups (read in parallel) still names its rows in file order."""
    idx = tmp_path / "i.duckdb"
    open_index(str(idx), create=True).close()
    dup, date = tmp_path / "dup.parquet", tmp_path / "date.parquet"
    con = duckdb.connect()
    for path, uid, study_date in ((dup, "CASE WHEN i = 150000 THEN '1.2.3.2' ELSE '1.2.3.' || i END", "NULL"),
                                  (date, "'1.2.3.' || i", "CASE WHEN i = 120000 THEN '2001-02-30' END")):
        con.execute(f"COPY (SELECT {uid} AS sop_instance_uid, {study_date} AS study_date FROM range(200000) t(i) "
                    f"ORDER BY i) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 10000)")
    con.close()
    r = cli("manifest", "load", dup, "--index", idx)
    assert r.code == 2 and "e.g. 1.2.3.2 on rows 3, 150001" in r.err, r.err
    r = cli("manifest", "load", date, "--index", idx)
    assert r.code == 2 and "row 120001: column study_date: '2001-02-30' is not a date" in r.err, r.err
    assert rows(idx, "SELECT count(*) FROM manifest") == [(0,)]


BAD = {
    # the table keeps states in lower case; the message quotes the export
    "state_as_written": ("sop_instance_uid,state\n1.2.3,ONLINE\n1.2.4,Archived\n1.2.5,GONE\n",
                         "line 3: column state: 'Archived' is not online, offline or deleted (2 rows in all)"),
    # both dates of one row invalid: the birth date is named, both are counted
    "two_bad_dates": ("sop_instance_uid,patient_birth_date,study_date\n1.2.3,,20010101\n1.2.4,1970-13-01,yesterday\n",
                      "line 3: column patient_birth_date: '1970-13-01' is not a date (YYYYMMDD or YYYY-MM-DD) "
                      "(2 invalid dates in all)"),
    "study_date_first": ("sop_instance_uid,patient_birth_date,study_date\n1.2.3,,2001\n1.2.4,1970-13-01,\n",
                         "line 2: column study_date: '2001' is not a date"),
    "empty_uid_counted": ("sop_instance_uid,state\n1.2.3,online\n ,online\n,offline\n",
                          "line 3: sop_instance_uid is empty (2 rows without one)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_export_named_and_rolled_back(case: str, tmp_path: Path, cli) -> None:
    idx = tmp_path / "i.duckdb"
    open_index(str(idx), create=True).close()
    good = tmp_path / "good.csv"
    good.write_text("sop_instance_uid,state\n9.9.1,online\n9.9.2,offline\n")
    assert cli("manifest", "load", good, "--index", idx).code == 0
    body, expected = BAD[case]
    src = tmp_path / f"{case}.csv"
    src.write_text(body)
    r = cli("manifest", "load", src, "--index", idx)
    assert r.code == 2 and expected in r.err and r.err.count("\n") == 1, r.err
    assert rows(idx, "SELECT sop_instance_uid, state FROM manifest ORDER BY 1") == [("9.9.1", "online"),
                                                                                   ("9.9.2", "offline")]
    assert rows(idx, "SELECT count(*) FROM manifest_loads") == [(1,)]


def test_a_manifest_loaded_before_0019_gets_its_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    idx = tmp_path / "old.duckdb"
    with index_before(idx, monkeypatch, 19) as con:
        scale.fill(con, 300)
        # a manifest as the loader before 0019 left it: the files' instances, one row without a file
        con.execute("""
            INSERT INTO manifest (sop_instance_uid, patient_id, patient_name, state, location, source_row)
            SELECT sop_instance_uid, patient_id, CASE WHEN i = 4 THEN 'OTHER^NAME' ELSE patient_name END,
                   'online', volume, i
            FROM (SELECT *, row_number() OVER (ORDER BY sop_instance_uid) AS i FROM files
                  WHERE sop_instance_uid IS NOT NULL
                  QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY path) = 1)
            WHERE i > 3;
            INSERT INTO manifest (sop_instance_uid, state, location, source_row) VALUES ('1.2.3.4.5', 'offline', 'T', 0);
        """)
    con = open_index(str(idx))  # applies 0019
    try:
        assert con.execute("SELECT count(*) FROM manifest WHERE sop_key IS NULL OR cmp_hash IS NULL").fetchone() == (0,)
        for check, ref in REFERENCE.items():
            sql = load_sql(f"checks/{check}").strip().rstrip(";")
            got = con.execute(f"SELECT sop_instance_uid, path, group_key FROM ({sql}) ORDER BY ALL").fetchall()
            assert got == con.execute(ref + " ORDER BY ALL").fetchall(), check
        without = con.execute("SELECT sop_instance_uid FROM (" + load_sql("checks/manifest_without_file").strip()
                              + ")").fetchall()
        assert without == [("1.2.3.4.5",)]
        orphans = con.execute("SELECT count(DISTINCT sop_instance_uid) FROM ("
                              + load_sql("checks/file_without_manifest").strip() + ")").fetchone()
        assert orphans is not None and 1 <= orphans[0] <= 3  # the first three instances (a copy may be missing)
        names = con.execute("SELECT list_transform(demographics, lambda x: x.attribute) FROM manifest_compare "
                            "WHERE sop_instance_uid = (SELECT sop_instance_uid FROM manifest WHERE source_row = 4)"
                            ).fetchall()
        assert names and all(n == ["PatientName"] for (n,) in names)
    finally:
        con.close()

"""files without its repeated columns (schema 0030, issue 12 "Compact"): path_bytes is kept only for a
name that is not valid UTF-8, meta_sop_instance_uid only where it differs from sop_instance_uid. A name
that is not UTF-8 is still hashed, sent and verified from the index; an index made before 0030 is
converted in place and its checks find what they found before."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest

from pacscopy.index import load_sql, open_index
from pacscopy.testing import scale
from pacscopy.testing.synth import make_archive

from .conftest import counts, index_before, rows
from .peers import dcmqrscp

# The two checks reading meta_sop_instance_uid as they were before 0030 (the column as read).
OLD_CHECKS = {
    "meta_sop_instance_mismatch": """
        SELECT 'warning' AS severity, path, sop_instance_uid, meta_sop_instance_uid AS group_key,
               'file meta names ' || coalesce(meta_sop_instance_uid, '(nothing)') || ', dataset has '
                   || coalesce(sop_instance_uid, 'no SOPInstanceUID') AS detail,
               NULL::BOOLEAN AS recoverable
        FROM files
        WHERE has_meta
          AND (status IN ('ok', 'suspect') OR (status = 'corrupt' AND (sop_instance_uid IS NOT NULL
                                                                       OR reason = 'missing_sop_instance_uid')))
          AND (meta_sop_instance_uid IS DISTINCT FROM sop_instance_uid)""",
    "invalid_uid": """
        WITH u AS (
            UNPIVOT (
                SELECT path, sop_instance_uid AS sop, sop_instance_uid, sop_class_uid, study_instance_uid,
                       series_instance_uid, transfer_syntax_uid, meta_sop_instance_uid
                FROM files WHERE status IN ('ok', 'suspect', 'corrupt')
            )
            ON sop_instance_uid, sop_class_uid, study_instance_uid, series_instance_uid, transfer_syntax_uid,
               meta_sop_instance_uid
            INTO NAME attr VALUE uid
        )
        SELECT 'warning' AS severity, path, any_value(sop) AS sop_instance_uid, min(uid) AS group_key,
               string_agg(attr || ' ' || '"' || uid || '"'
                   || CASE WHEN length(uid) > 64 THEN ' is ' || length(uid) || ' characters'
                           WHEN NOT regexp_full_match(uid, '[0-9.]*') THEN ' has characters other than digits and dots'
                           WHEN uid LIKE '%..%' OR uid LIKE '.%' OR uid LIKE '%.' THEN ' has an empty component'
                           ELSE ' has a component with a leading zero' END, '; ' ORDER BY attr) AS detail,
               NULL::BOOLEAN AS recoverable
        FROM u
        WHERE NOT uid_valid(uid)
        GROUP BY path""",
}

# Rows an older scan could have written, each a copy of the first synthetic row with (path, path_bytes,
# has_meta, status, reason, meta_sop_instance_uid, sop_instance_uid) replaced.
SPECIAL = [
    ("/x/J\\xe9r\\xf4me.dcm", b"/x/J\xe9r\xf4me.dcm", True, "ok", None, None, None),  # not UTF-8; sop kept
    ("/x/Müller.dcm", "/x/Müller.dcm".encode(), True, "ok", None, None, None),       # UTF-8 but not ASCII
    ("/x/other-meta.dcm", None, True, "ok", None, "1.2.3.999", None),                 # meta names another
    ("/x/no-meta-uid.dcm", None, True, "ok", None, "", None),                         # the meta has none
    ("/x/raw.dcm", None, False, "ok", None, "", None),                                # no file meta at all
    ("/x/bad-both.dcm", None, True, "ok", None, "1.2.03.4", "1.2.03.4"),              # invalid, equal
    ("/x/bad-meta.dcm", None, True, "suspect", None, "1.2.03", None),                 # invalid, differs
    ("/x/no-sop.dcm", None, True, "corrupt", "missing_sop_instance_uid", "1.2.3.7", ""),  # dataset has none
    ("/x/neither.dcm", None, True, "corrupt", "missing_sop_instance_uid", "", ""),    # neither has one
]


def _old_index(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index made by pacscopy before 0030 (every earlier migration), with the SPECIAL rows."""
    with index_before(path, monkeypatch, 30) as con:
        scale.fill(con, 300)
        for p, pb, has_meta, status, reason, meta, sop in SPECIAL:
            # None: as the first row (path_bytes: the name's own bytes); '': NULL
            con.execute("""
                INSERT INTO files SELECT * REPLACE (
                    $p AS path, coalesce($pb, encode($p)) AS path_bytes, $has_meta AS has_meta,
                    $status AS status, $reason AS reason,
                    CASE WHEN $meta IS NULL THEN meta_sop_instance_uid ELSE nullif($meta, '') END
                        AS meta_sop_instance_uid,
                    CASE WHEN $sop IS NULL THEN sop_instance_uid ELSE nullif($sop, '') END AS sop_instance_uid)
                FROM files WHERE path = (SELECT min(path) FROM files)""",
                        {"p": p, "pb": pb, "has_meta": has_meta, "status": status, "reason": reason, "meta": meta,
                         "sop": sop})
        assert con.execute("SELECT count(*) FROM files WHERE path_bytes IS NULL").fetchone() == (0,)


def test_an_index_made_before_0030_is_converted_and_its_checks_find_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    idx = tmp_path / "old.duckdb"
    _old_index(idx, monkeypatch)
    before = {c: rows(idx, f"SELECT * FROM ({sql}) ORDER BY ALL") for c, sql in OLD_CHECKS.items()}
    names = dict(rows(idx, "SELECT path, path_bytes FROM files"))
    metas = dict(rows(idx, "SELECT path, meta_sop_instance_uid FROM files"))
    assert len(before["meta_sop_instance_mismatch"]) == 4 and len(before["invalid_uid"]) == 2  # they can fail

    con = open_index(str(idx))  # applies 0030
    try:
        for check in OLD_CHECKS:
            sql = load_sql(f"checks/{check}").strip().rstrip(";")
            assert con.execute(f"SELECT * FROM ({sql}) ORDER BY ALL").fetchall() == before[check], check
        # every name's bytes as before; kept only for the one that is not UTF-8
        got = dict(con.execute("SELECT path, file_path_bytes(path, path_bytes) FROM files").fetchall())
        assert got == names
        assert con.execute("SELECT path FROM files WHERE path_bytes IS NOT NULL").fetchall() == [
            ("/x/J\\xe9r\\xf4me.dcm",)]
        # the meta's UID as read, from what is kept: only where it differs
        got = dict(con.execute("SELECT path, meta_sop_uid(meta_sop_instance_uid, sop_instance_uid) FROM files"
                               ).fetchall())
        assert got == metas
        kept = dict(con.execute("SELECT path, meta_sop_instance_uid FROM files "
                                "WHERE meta_sop_instance_uid IS NOT NULL").fetchall())
        assert kept == {"/x/other-meta.dcm": "1.2.3.999", "/x/no-meta-uid.dcm": "", "/x/raw.dcm": "",
                        "/x/bad-meta.dcm": "1.2.03", "/x/no-sop.dcm": "1.2.3.7"}
    finally:
        con.close()


def test_a_name_not_utf8_is_hashed_sent_and_verified_from_the_index(tmp_path: Path, cli) -> None:
    root = tmp_path / "src"
    make_archive(root, patients=1, studies_per_patient=1, series_per_study=2, instances_per_series=3,
                 defects=False, conflicts=False, specials=False)
    first, second, *_ = sorted(root.rglob("*.dcm"))
    latin = os.fsencode(first.parent) + b"/J\xe9r\xf4me.dcm"  # Latin-1: not valid UTF-8
    os.rename(os.fsencode(first), latin)
    # a copy of another instance with other content, under a Latin-1 name: check hashes both copies
    ds = pydicom.dcmread(second)
    ds.StudyDescription = "OTHER DESCRIPTION"
    other = os.fsencode(second.parent) + b"/K\xf6nig.dcm"
    ds.save_as(os.fsdecode(other))
    idx = tmp_path / "i.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    kept = rows(idx, "SELECT path_bytes FROM files WHERE path_bytes IS NOT NULL ORDER BY 1")
    assert sorted(bytes(b) for (b,) in kept) == sorted([latin, other])
    # every sound Part 10 file's meta names its instance: nothing kept
    assert rows(idx, "SELECT count(*) >= 7, count(meta_sop_instance_uid) FROM files WHERE status = 'ok' AND has_meta"
                ) == [(True, 0)]
    hashed = rows(idx, "SELECT path, content_hash IS NOT NULL FROM content_hashes ORDER BY 1")
    assert len(hashed) == 2 and all(ok for _, ok in hashed) and any(p.endswith("K\\xf6nig.dcm") for p, _ in hashed)
    latin_sop = rows(idx, "SELECT sop_instance_uid FROM files WHERE path LIKE '%J\\xe9r\\xf4me.dcm'")[0][0]
    with dcmqrscp(tmp_path) as peer:
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--associations", "1")
        assert r.code == 0, r.out + r.err + peer.logtext()[-2000:]
        sent = {s for (s,) in rows(idx, "SELECT sop_instance_uid FROM stored")}
        assert latin_sop in sent and len(sent) == counts(r.out)["stored"] >= 5
        for mode in ("find", "retrieve"):  # retrieve compares with the source file, opened from the index
            r = cli("verify", "--target", peer.target, "--index", idx, "--mode", mode, "-q")
            assert r.code == 0, r.out + r.err + peer.logtext()[-2000:]
            assert counts(r.out)["verified"] == len(sent), r.out

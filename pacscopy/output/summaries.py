"""The text a command prints about its result: pure functions from the library's results to lines.

The CLI calls the library, hands the result to one of these and prints what
comes back; the wording lives here, beside the tables of :mod:`pacscopy.output.render`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pacscopy.output.render import human_bytes, table


def scan_root_line(res: Any) -> str:
    """One scanned root (:class:`pacscopy.scan.scan.ScanResult`): what changed, what was read, how fast."""
    rate = res.bytes_read / 1e6 / res.seconds if res.seconds else 0.0
    return (f"{res.root} (volume {res.volume}): {res.new} new, {res.changed} changed, "
            f"{res.unchanged} unchanged, {res.missing} missing; read {res.files_read} files, "
            f"{human_bytes(res.bytes_read)} in {res.seconds:.1f} s ({rate:.1f} MB/s)")


def index_statuses(index: str, statuses: Iterable[Any]) -> str:
    """The whole index after a scan: files and bytes per status (:class:`pacscopy.scan.scan.StatusCount`)."""
    return f"\nindex {index}:\n" + table(["status", "files", "bytes"],
                                         [(s.status, s.files, human_bytes(s.bytes)) for s in statuses])


def plan_table(plan: Sequence[Any]) -> str:
    """The plan in one table: instances, decisions and bytes per disposition."""
    return table(["disposition", "instances", "decided", "bytes"],
                 [(p.disposition, p.instances, p.decided, human_bytes(p.bytes)) for p in plan])


def probe_lines(res: Any) -> list[str]:
    """What a probe found (:class:`pacscopy.send.probe.ProbeResult`): the echo, the pairs, the new plan, what is blocked."""
    lines = [f"{res.target}: C-ECHO 0x{res.echo_status:04X}; {res.accepted} of {res.pairs} "
             f"(SOP class, transfer syntax) pairs accepted in {res.associations} association(s)",
             plan_table(res.plan)]
    for hint, n in res.blocked.items():
        lines.append(f"blocked: {n} " + ("sendable with send --transcode" if hint is None else
                                         "refused in every syntax" if hint == "refused" else f"not transcodable: {hint}"))
    return lines


def manifest_line(res: Any) -> str:
    """A manifest load (:class:`pacscopy.manifest.load.LoadResult`)."""
    return (f"manifest load {res.load_id}: {res.rows} rows from {res.source} ({res.format}); "
            "run 'pacscopy check' to apply it")

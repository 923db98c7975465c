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


def dry_run_lines(plan: Any, target: Any) -> list[str]:
    """What a send would send (:class:`pacscopy.send.queue.DryRun`): totals, groups, the first updates."""
    lines = [f"dry run: {plan.instances} instances ({plan.updates} updates), "
             f"{human_bytes(plan.bytes)} would be sent to {target}",
             table(["sop_class_uid", "transfer_syntax", "instances", "bytes"],
                   [(g.sop_class_uid, g.transfer_syntax, g.instances, human_bytes(g.bytes)) for g in plan.groups],
                   max_width=70)]
    if plan.update_examples:
        lines += [f"updates (first {len(plan.update_examples)}):",
                  table(["sop_instance_uid", "why"], plan.update_examples, max_width=100)]
    return lines


def send_lines(run: Any) -> list[str]:
    """A send's summary (:class:`pacscopy.send.run.SendRun`): counts, books, what was not sent, the rate,
    the retrieve-back of its updates."""
    res = run.summary
    rate = res.bytes_sent / 1e6 / res.seconds if res.seconds else 0.0
    lines = [f"send run {res.run_id} to {res.target}: {res.outcome}",
             f"  queued:    {res.queued} instances ({human_bytes(res.bytes_queued)}), "
             f"{res.updates_queued} of them updates",
             f"  stored:    {res.stored}",
             f"  warnings:  {res.warnings} (stored, possibly coerced)",
             f"  failed:    {res.failed}"]
    lines += [f"    {k}: {v}" for k, v in sorted(res.failed_by_status.items())]
    lines += [f"  retries:   {res.retries}"]
    if run.books is not None:
        pb = run.books
        lines.insert(1, f"  books:     migration {pb.link.migration_name!r} as host {pb.link.host_name!r}"
                        + (f", share {pb.shard}" if pb.shard else "")
                        + f"; {pb.skipped} instances claimed by other hosts (theirs to send)")
    if res.source_changed:
        lines.append(f"  source changed since scan (not sent): {res.source_changed}")
    if res.not_sent:
        lines.append(f"  not sent:  {res.left}")
        lines += [f"    {k}: {v}" for k, v in res.not_sent.items()]
    if res.target_error:
        lines.append(f"  target: {res.target_error}")
    lines.append(f"  {human_bytes(res.bytes_sent)} in {res.seconds:.1f} s, average {rate:.1f} MB/s")
    if not res.merged:
        lines.append("  the index stayed busy: the last records wait in the run's journal, and the next pacscopy "
                     "command that opens the index merges them")
    if run.proof is not None:
        lines.append(proof_line(run.proof))
        if run.proof.counts.get("mismatch", 0):
            lines.append("  the target answered success but kept its old copy: see pacscopy reconcile (stale_on_target)")
    return lines


def proof_line(res: Any) -> str:
    """How the retrieve-back of updates went (:class:`pacscopy.verify.verify.VerifyResult`)."""
    c = res.counts
    return (f"updates retrieved back: {res.checked}; verified {c.get('verified', 0)}, "
            f"kept old copy (stale) {c.get('mismatch', 0)}, missing {c.get('missing_on_target', 0)}, "
            f"failed {c.get('failed', 0)}")


def verify_lines(run: Any) -> list[str]:
    """A verify run (:class:`pacscopy.verify.run.VerifyRun`): counts per outcome, the first problems, the updates."""
    res = run.result
    lines = [f"verify {res.mode} against {res.target}: {res.checked} instances checked"
             + (f" ({res.resumed} by run {res.run_id} before it was interrupted: not checked again)"
                if res.resumed else "")]
    lines += [f"  {k + ':':19s}{res.counts.get(k, 0)}" for k in ("verified", "missing_on_target", "mismatch", "failed")]
    if res.problems:
        lines.append(table(["sop_instance_uid", "outcome", "detail"], res.problems, max_width=100))
    if run.proof is not None:
        lines.append(proof_line(run.proof))
    return lines


def unproven_line(n: int, error: str) -> str:
    """The retrieve-back of the updates after a send failed: verify does it later."""
    return f"{n} updates not proven yet (pacscopy verify retrieves them back; give --port for C-MOVE): {error}"


def status_lines(target: Any, p: Any, sends: Sequence[Any]) -> list[str]:
    """Progress towards a target (:class:`pacscopy.send.progress.SendProgress`), the sends running, the estimate."""
    lines = [f"target {target}: {p.in_plan} instances in the plan, each counted once"]
    for r in sends:  # their newest attempts are in their journals: say how old the figures are
        s = r.send
        # r.live: read from what the send published, the index being unchanged since (status_cache.live)
        source = "from the running send" if r.live else ""
        when = (f"as of {r.as_of:%Y-%m-%d %H:%M:%S}, its latest merge" + (f" ({source})" if source else "")
                if r.as_of else "as of its start (nothing merged yet" + (f"; {source})" if source else ")"))
        lines.append(f"  a send to {s.target} {s.state()}, pid {s.pid} on {s.host} since "
                     f"{s.since}): {'these figures are' if s.target == str(target) else 'its figures are'} {when}")
        if r.rate is not None:  # the send's own rate over the last minute (its rate file: newer than the index)
            lines.append(f"    {r.rate.line()}")
    rows = [
        ("stored and current", p.stored_current, f"{p.verified} verified, {p.warnings} stored with warnings"),
        ("verify problems", p.verify_problems, "mismatch, missing on target or disputed: see reconcile"),
        ("updates pending", p.updates_pending, "the source changed since stored: send sends them"),
        ("stale on target", p.stale, "the target kept its old copy of an update"),
        ("deleted in source", p.deleted_in_source, "still on the target: decide --action keep|remove"),
        ("awaiting decision", p.awaiting_decision, "held: decide --action send|skip|hold"),
        ("failed", p.failed, "the latest attempt failed"),
        ("left", p.not_sent, "planned, not sent yet"),
        ("excluded", p.excluded, "with a recorded reason (corrupt, blocked, decided, deleted before sent)"),
    ]
    lines += [f"  {name + ':':20s}{n:>9}  {note}" for name, n, note in rows]
    lines.append(f"  to send:            {p.left_to_send:>9}  ({human_bytes(p.left_bytes)}: left, failed, "
                 "updates, stale)")
    if p.run_id is not None and p.ended and p.instances:
        lines.append(f"  latest run {p.run_id}: {p.per_second:.1f} instances/s, {p.mb_per_second:.1f} MB/s")
        eta = p.finish()
        if eta is not None:
            lines.append(f"  estimated finish at that rate: {eta:%Y-%m-%d %H:%M} (sending around the clock)")
    elif p.left_to_send:
        own = [r.rate for r in sends if r.send.target == str(target) and r.rate and r.rate.instances_per_s > 0]
        if own:  # a first send, running: its own rate
            lines.append(f"  estimated finish at the running send's rate: {own[0].finish(p.left_to_send):%Y-%m-%d %H:%M}")
        else:
            lines.append("  no send run yet: no rate to estimate a finish from")
    return lines

"""Scan worker processes: small fresh interpreters that read, hash and parse files.

Why not :mod:`multiprocessing`: a fork of the scanning process would copy
DuckDB's threads and locks (unsafe) and its 100 MB; a forkserver takes about
0.3 s to start; ``spawn`` re-imports the CLI's main module. A worker here is
``python -S -P -c "from pacscopy.scan.pool import worker_main; worker_main()"``:
it imports only :mod:`pacscopy.scan.fileread` (the parser and xxhash), so it is
ready in ~20 ms and stays at about 11 MB.

The protocol is length-prefixed pickles over the worker's pipes: a list of
paths in on stdin, the list of their rows (:data:`pacscopy.scan.fileread.ROW_COLUMNS`)
out on stdout, or the text of an unexpected error. A worker exits at EOF on
its stdin. When the scanning process dies, whatever kills it (also kill -9),
its ends of the pipes close: the worker sees EOF or a broken pipe and exits,
so no worker outlives the scan.

This module imports nothing heavy at module level either: the worker imports it.
"""

from __future__ import annotations

import os
import pickle
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms for a worker)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any, NoReturn

from pacscopy.errors import PacscopyError

_HEADER = 4  # little-endian payload length
_WORKER = "from pacscopy.scan.pool import worker_main; worker_main()"
#: Chunks in flight per worker: enough that it never waits for the next one
#: while the scanning process is busy in DuckDB, few enough to end together.
CREDIT = 16


class WorkerError(PacscopyError):
    """A worker process failed or died: the scan cannot know what it missed.

    The scan stops; what it wrote so far stays, and the next scan reads the rest.
    """


def worker_main() -> NoReturn:
    """The worker process: read path lists from stdin, write row lists to stdout."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scanning process's to handle
    import warnings

    # As in the CLI: pydicom's charset code warns about odd values; the index records them.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?")
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by accident goes to stderr, never into the protocol
    inp = sys.stdin.buffer

    from pacscopy.scan.fileread import read_rows

    code = 0
    try:
        while True:
            head = inp.read(_HEADER)
            if len(head) < _HEADER:
                break  # EOF: no more work, or the scanning process is gone
            paths = pickle.loads(inp.read(int.from_bytes(head, "little")))
            try:
                payload = pickle.dumps(read_rows(paths), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # a bug, not a bad file (those become rows): report it and stop
                import traceback

                _write_frame(out, pickle.dumps(traceback.format_exc()))
                code = 1
                break
            _write_frame(out, payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the scanning process is gone
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    try:
        out.close()
    except OSError:
        pass
    # Nothing else to clean up: skip the interpreter's teardown, the scan may be waiting.
    os._exit(code)


def _write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(len(payload).to_bytes(_HEADER, "little"))
    out.write(payload)
    out.flush()


def scan_workers(n: int) -> Workers | None:
    """Workers for a scan that will read every file, started first thing.

    They take ~20 ms to start, and the scanning process has ~0.1 s of DuckDB to
    import and open meanwhile: if there are no more cores than workers, one of
    them waits (:meth:`Workers.activate`) so that this process keeps a core.
    """
    if n < 2:
        return None
    return Workers(n, n - 1 if (os.cpu_count() or 1) <= n else None)


class Workers:
    """``n`` worker processes fed from one queue of path chunks; results come back unordered.

    One feeder and one reader thread per worker move the bytes, so a worker
    gets its next chunk while the calling thread writes to the index. The
    calling thread submits chunks, collects finished ones with :meth:`poll`
    (non-blocking) or :meth:`results` (until all are done), and must call
    :meth:`close`.
    """

    def __init__(self, n: int, active: int | None = None) -> None:
        """Start ``n`` workers; only the first ``active`` get work until :meth:`activate`."""
        import _thread
        import queue
        import subprocess
        import threading

        self._work: queue.Queue[bytes | None] = queue.Queue()
        self._done: queue.Queue[bytes | BaseException | None] = queue.Queue()
        self._credits: list[threading.Semaphore] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.submitted = self.received = 0
        self._readers = 0
        self._ended: list[threading.Event] = []  # one per I/O thread, set when it ends
        self._finished = False
        env = dict(os.environ)
        # The workers import exactly what this process would: its own sys.path, this copy
        # of pacscopy included. -S: no site module and .pth files to process, the paths
        # are given (~6 ms less per worker); -P: no current folder on the path.
        paths = [p for p in sys.path if p]
        flags = ["-P"]
        if not any(os.pathsep in p for p in paths):
            flags.insert(0, "-S")
            env["PYTHONPATH"] = os.pathsep.join(paths)
        else:  # a path that cannot travel in PYTHONPATH: let site find them, as usual
            here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            for _ in range(n):
                self.procs.append(subprocess.Popen(
                    [sys.executable, *flags, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    env=env, close_fds=True,
                ))
        except BaseException:
            self.close()
            raise
        self._held: list[threading.Semaphore] = []
        for i, p in enumerate(self.procs):
            credit = threading.Semaphore(CREDIT if active is None or i < active else 0)
            if active is not None and i >= active:
                self._held.append(credit)
            self._credits.append(credit)
            for target in (self._feed, self._read):
                ended = threading.Event()
                self._ended.append(ended)
                # _thread: threading.Thread.start() waits until the thread runs, ~4 ms each
                # while the new workers take both cores; these threads need no such wait.
                _thread.start_new_thread(self._run, (target, p, credit, ended))
            self._readers += 1

    def activate(self) -> None:
        """Give work to the workers held back at the start, too."""
        held, self._held = self._held, []
        for credit in held:
            for _ in range(CREDIT):
                credit.release()

    def submit(self, paths: list[bytes]) -> None:
        """Queue one chunk of paths for whichever worker is free first."""
        self._work.put(pickle.dumps(paths, protocol=pickle.HIGHEST_PROTOCOL))
        self.submitted += 1

    def finish(self) -> None:
        """No more chunks: each worker exits once it has sent back all of its own."""
        if not self._finished:
            self._finished = True
            for _ in self.procs:
                self._work.put(None)

    def backlog(self) -> int:
        """Chunks submitted and not yet taken back by :meth:`poll`, :meth:`wait` or :meth:`results`."""
        return self.submitted - self.received

    def wait(self) -> list[list[tuple[Any, ...]]]:
        """At least one finished chunk (waiting for it), and any others finished by then."""
        while self._readers:
            rows = self._take(self._done.get())
            if rows is not None:
                return [rows, *self.poll()]
        return []

    def poll(self) -> list[list[tuple[Any, ...]]]:
        """The chunks finished so far, without waiting."""
        import queue

        out = []
        while self._readers:
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                break
            rows = self._take(item)
            if rows is not None:
                out.append(rows)
        return out

    def results(self, idle: Callable[[], object] | None = None) -> Iterator[list[tuple[Any, ...]]]:
        """Every remaining chunk as it finishes; ``idle()`` runs whenever none is ready yet."""
        self.finish()
        # Done once every chunk is back: the workers' exits need no waiting for (close()).
        while self._readers and self.received < self.submitted:
            if idle is not None and self._done.empty():
                idle()
            rows = self._take(self._done.get())
            if rows is not None:
                yield rows
        if self.received < self.submitted:
            codes = [p.poll() for p in self.procs]
            raise WorkerError(f"a scan worker exited early (exit codes {codes}): "
                              f"{self.submitted - self.received} chunk(s) of files were not read")

    def _take(self, item: bytes | BaseException | None) -> list[tuple[Any, ...]] | None:
        if item is None:
            self._readers -= 1
            return None
        if isinstance(item, BaseException):
            raise WorkerError(f"lost contact with a scan worker: {item}") from item
        rows = pickle.loads(item)
        if isinstance(rows, str):
            raise WorkerError(f"a scan worker failed:\n{rows}")
        self.received += 1
        return rows  # type: ignore[no-any-return]

    @staticmethod
    def _run(target: Any, p: Any, credit: Any, ended: Any) -> None:
        try:
            target(p, credit)
        finally:
            ended.set()

    def _feed(self, p: Any, credit: Any) -> None:
        try:
            while True:
                credit.acquire()
                frame = self._work.get()
                if frame is None:
                    break
                _write_frame(p.stdin, frame)
        except (OSError, ValueError):
            pass  # the worker is gone; its reader reports that
        finally:
            try:
                p.stdin.close()
            except OSError:
                pass

    def _read(self, p: Any, credit: Any) -> None:
        try:
            while True:
                head = p.stdout.read(_HEADER)
                if not head:
                    break
                if len(head) < _HEADER:
                    raise EOFError("truncated frame")
                payload = p.stdout.read(int.from_bytes(head, "little"))
                credit.release()
                self._done.put(payload)
        except BaseException as e:  # reported by the calling thread
            self._done.put(e)
        finally:
            self._done.put(None)

    def close(self) -> None:
        """Stop every worker (at once, if work is still queued) and reap it."""
        self._finished = True
        for credit in self._credits:
            for _ in range(CREDIT + 1):
                credit.release()  # a feeder waiting for credit wakes, finds no work and ends
        for _ in self.procs:
            self._work.put(None)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for ended in self._ended:
            ended.wait(5)  # each sees EOF or a broken pipe once its worker is gone
        for p in self.procs:
            for f in (p.stdin, p.stdout):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass

"""Scan worker processes: small fresh interpreters that read, hash and parse files, fed over pipes.

Why (in one line): a bare ``python -S`` per core imports only the parser and xxhash (~11 MB) and exits when the scan's pipes close, even after kill -9.

Why not :mod:`multiprocessing`: a fork of the scanning process would copy
DuckDB's threads and locks (unsafe) and its 100 MB; a forkserver takes about
0.3 s to start; ``spawn`` re-imports the CLI's main module. A worker here is
``python -S -P -c "from pacscopy.scan.pool import worker_main; worker_main()"``:
it imports only :mod:`pacscopy.scan.fileread` (the parser and xxhash), so it is
ready in ~20 ms and stays at about 11 MB. The workers are sized for CPU (one
per core); a worker reads ahead in threads when the storage is slow
(:class:`ReadAhead`), so that I/O concurrency does not cost interpreters.

The protocol is length-prefixed pickles over the worker's pipes: a chunk of
paths (with their sizes, as walked) in on stdin, the list of their rows (:data:`pacscopy.scan.fileread.ROW_COLUMNS`)
out on stdout, or the text of an unexpected error. A worker exits at EOF on
its stdin. When the scanning process dies, whatever kills it (also kill -9),
its ends of the pipes close: the worker sees EOF or a broken pipe and exits,
so no worker outlives the scan.

The worker imports this module, but it imports only the standard library and
the parser (no DuckDB, pydicom or numpy). Standard imports are at module level:
issue 11 removed the start-up tricks of earlier versions here
(``TYPE_CHECKING = False``, imports inside functions, ``_thread``), none of which
was worth 5 % of a steady-state scan. The worker imports :mod:`typing` through the
parser anyway, and the imports moved here cost a worker a few ms once per scan
(``subprocess`` ~15 ms, ``concurrent.futures`` ~7 ms at a load average of 11);
the main process's I/O threads are started with :class:`threading.Thread`
(``start()`` waits until each runs: ~4 ms each, 4 threads for 2 workers, once
per scan): against a scan of 50,000 × 10 KB (~2.5 s on a quiet machine) all of
that is under 1 %.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import IO, Any, NoReturn

from pacscopy.errors import WorkerError
from pacscopy.scan.fileread import Loaded, load

_HEADER = 4  # little-endian payload length
_WORKER = "from pacscopy.scan.pool import worker_main; worker_main()"
#: Chunks in flight per worker: enough that it never waits for the next one
#: while the scanning process is busy in DuckDB, few enough to end together.
CREDIT = 16
#: Reads in flight, at most, over all workers (unless ``io_depth`` says otherwise): what a
#: NAS answering in 2-10 ms needs to deliver its throughput. Each worker adapts its own
#: number to the latency it sees (:class:`ReadAhead`); on a local disk it stays at one.
IO_DEPTH = 64
#: Bytes read ahead and not yet parsed, at most, over all workers.
IO_BYTES = 64 << 20


def worker_main() -> NoReturn:
    """The worker process: read path lists from stdin, write row lists to stdout.

    Its arguments (``sys.argv[1:]``): the most reads it keeps in flight, and the
    most bytes those may hold (:class:`ReadAhead`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scanning process's to handle
    # As in the CLI: pydicom's charset code warns about odd values; the index records them.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?")
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by accident goes to stderr, never into the protocol
    inp = sys.stdin.buffer
    max_depth, max_bytes = (int(a) for a in sys.argv[1:3])

    # A thread takes the chunks in as they come, so that reads of the next chunks can
    # start while this one is parsed; the credits (CREDIT) bound how many wait here.
    chunks: queue.Queue[tuple[list[bytes], list[int]] | None] = queue.Queue()

    def intake() -> None:
        try:
            while True:
                head = inp.read(_HEADER)
                if len(head) < _HEADER:
                    break  # EOF: no more work, or the scanning process is gone
                chunks.put(pickle.loads(inp.read(int.from_bytes(head, "little"))))
        finally:
            chunks.put(None)

    threading.Thread(target=intake, daemon=True).start()
    code = 0
    reads = ReadAhead(max_depth, max_bytes)
    try:
        for rows in reads.rows(chunks):
            _write_frame(out, pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the scanning process is gone
    except Exception:  # a bug, not a bad file (those become rows): report it and stop
        try:
            _write_frame(out, pickle.dumps(traceback.format_exc()))
        except OSError:
            pass
        code = 1
    try:
        out.close()
    except OSError:
        pass
    # Nothing else to clean up: skip the interpreter's teardown, the scan may be waiting.
    if os.environ.get("PACSCOPY_DEBUG_READS"):
        print(f"scan worker: depth {reads.depth}, at most {reads.most_in_flight} reads and {reads.most_bytes} bytes "
              f"in flight; read wait {reads.wait_s * 1e3:.2f} ms, parse {reads.parse_s * 1e3:.3f} ms", file=sys.stderr)
    os._exit(code)


class ReadAhead:
    """Reads files ahead of the parsing, as many at once as the storage's latency calls for.

    On a local disk a file's bytes come back in microseconds, mostly as CPU
    work (a copy from the page cache): the parsing thread reads each file
    itself, and threads would only add hand-offs. On network storage (NFS, SMB,
    a tape library's staging disk) each open and read waits a round trip:
    then threads read ahead (``os.read`` releases the GIL), up to ``depth``
    files in flight. The time a read spends blocked decides: its wall time
    less its CPU time and less the time it waited for a CPU (Linux's
    ``/proc/thread-self/schedstat``: on a busy machine a read preempted is
    not a slow storage). Above :data:`THREADS_ABOVE_S` the reads go to
    threads, with enough in flight to cover that wait at the parsing's pace.
    The depth then grows whenever the parsing has to wait for a read, and
    shrinks slowly while it never does. Every :data:`PROBE_EVERY` files, or
    at the smallest depth, the reads go back to the parsing thread to be
    measured again (threads only cost where reads do not wait). ``max_bytes``
    caps the bytes read ahead and not yet parsed (the sizes the walk saw; one
    file is always allowed).
    """

    #: A read blocked longer than this (beyond its CPU time and run-queue wait) is worth a thread...
    THREADS_ABOVE_S = 50e-6
    #: ... if it is also this many times the parsing's time per file.
    WAIT_OVER_PARSE = 2
    #: The first reads of a fresh worker decide nothing (its code and libraries are still being paged in).
    WARMUP = 16
    #: Files between two steps down of the depth while the parsing never waits.
    SHRINK_EVERY = 512
    #: Files read ahead in threads between two checks that threads still pay: FIRST_PROBE after
    #: threads start, twice as many each time a check confirms them, up to PROBE_EVERY.
    FIRST_PROBE = 256
    PROBE_EVERY = 4096
    #: One inline read in this many is timed (reading the schedstat costs ~2 us)...
    TIME_EVERY = 4
    #: ... and the median of the last WINDOW timed decides.
    WINDOW = 7

    def __init__(self, max_depth: int, max_bytes: int) -> None:
        self.max_depth = max(1, max_depth)
        self.max_bytes = max_bytes
        self.depth = 0  # 0: the parsing thread reads; else reads in flight in threads
        self.wait_s = 0.0  # median storage wait of the last reads timed inline
        self.waits: deque[float] = deque(maxlen=self.WINDOW)
        self.parse_s = 0.0  # smoothed time the parsing takes per file
        self.calm = 0  # files parsed since the parsing last waited for a read
        self.threaded = 0  # files read ahead in threads since the last probe
        self.last_depth = 0  # the depth before the last probe
        self.inline = 0  # files read inline
        self.warm = 0  # files read inline since the worker started, up to WARMUP
        self.probe_every = self.FIRST_PROBE
        self.pool: Any = None
        self.most_in_flight = self.most_bytes = 0  # the peaks, for tests and --debug figures

    def rows(self, chunks: queue.Queue[tuple[list[bytes], list[int]] | None]) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of each chunk of ``(paths, sizes)`` from ``chunks`` (None: no more), in order."""
        busy = _BusyClock()
        todo: deque[tuple[bytes, int]] = deque()  # files of the chunks taken in, not yet started
        sizes: deque[int] = deque()  # chunk sizes, in files, of the chunks taken in
        flight: deque[tuple[Any, int]] = deque()  # (future, size), in order
        flight_bytes = 0
        done: list[tuple[Any, ...]] = []
        ended = False
        try:
            while True:
                # Take in chunks: enough to fill the reads in flight; wait for one only when idle.
                while not ended and (not sizes or len(todo) < self.depth):
                    try:
                        chunk = chunks.get(block=not sizes)
                    except queue.Empty:
                        break
                    if chunk is None:
                        ended = True
                    elif chunk[0]:
                        sizes.append(len(chunk[0]))
                        todo.extend(zip(chunk[0], chunk[1]))
                    else:
                        yield []
                if not sizes:
                    return
                if self.depth:
                    while todo and len(flight) < self.depth and (
                            not flight or flight_bytes + todo[0][1] <= self.max_bytes):
                        path, size = todo.popleft()
                        flight.append((self.pool.submit(load, path), size))
                        flight_bytes += size
                    self.most_in_flight = max(self.most_in_flight, len(flight))
                    self.most_bytes = max(self.most_bytes, flight_bytes)
                t0 = perf_counter()
                if flight:
                    fut, size = flight.popleft()
                    flight_bytes -= size
                    waited = not fut.done()
                    got = fut.result()
                    self._after_wait(waited)
                    t0 = perf_counter()
                else:
                    path, _ = todo.popleft()
                    self.inline += 1
                    if len(self.waits) < self.WINDOW or self.inline % self.TIME_EVERY == 1:
                        c0 = busy()
                        got = load(path)
                        wall = perf_counter() - t0
                        self._after_inline(wall - (busy() - c0))
                    else:
                        got = load(path)
                    t0 = perf_counter()
                if isinstance(got, Loaded):
                    got = got.row()
                    took = perf_counter() - t0
                    self.parse_s = self.parse_s + (took - self.parse_s) / 16 if self.parse_s else took
                done.append(got)
                if len(done) == sizes[0]:
                    sizes.popleft()
                    yield done
                    done = []
        finally:
            busy.close()
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)

    def _after_inline(self, wait: float) -> None:
        if self.warm < self.WARMUP:
            self.warm += 1
            return
        self.waits.append(wait)
        if len(self.waits) < self.WINDOW:
            return
        # Slow storage makes every read wait; a busy machine only some: a preemption or, in a
        # VM, the host taking the virtual CPU away (steal time, invisible to the thread's own
        # clocks) adds milliseconds to a read now and then, 4 of 7 at times under a load of 20
        # on 2 cores. So threads only when all but one of the last few reads waited, and waited
        # longer than the parsing takes: in a worker starved of CPU a read also waits for the
        # GIL, but then the parsing is as slow, and threads would only add CPU (measured at
        # load 20 on 2 cores: 32 threads on a warm local disk, +88 % CPU).
        waits = sorted(self.waits)
        self.wait_s = waits[len(waits) // 2]
        if self.max_depth > 1 and waits[1] > max(self.THREADS_ABOVE_S, self.WAIT_OVER_PARSE * self.parse_s):
            # Threads again right after a check: the next check comes later.
            self.probe_every = min(self.PROBE_EVERY, self.probe_every * 2) if self.last_depth else self.FIRST_PROBE
            if self.pool is None:
                self.pool = ThreadPoolExecutor(self.max_depth, thread_name_prefix="read")
            # Little's law: to parse without waiting, wait/parse reads must be in flight.
            little = 2 + int(self.wait_s / max(self.parse_s, 1e-5))
            self.depth = min(self.max_depth, max(little, self.last_depth))
            self.calm = self.threaded = 0

    def _after_wait(self, waited: bool) -> None:
        self.threaded += 1
        if self.threaded >= self.probe_every:  # do threads still pay? read inline for a while
            self.last_depth, self.depth, self.inline = self.depth, 0, 0
            self.waits.clear()
            return
        if waited:
            self.calm = 0
            self.depth = min(self.max_depth, self.depth + 1)
            return
        self.calm += 1
        if self.calm >= self.SHRINK_EVERY:
            self.calm = 0
            self.depth -= 1
            if self.depth < 2:  # reads are as fast as parsing: measure them inline again
                self.depth = self.last_depth = self.inline = 0
                self.waits.clear()


class _BusyClock:
    """Seconds the calling thread ran or waited to run: what is left of a read's wall time is storage wait.

    CPU time from :func:`time.thread_time` (``CLOCK_THREAD_CPUTIME_ID``, which brings the
    running thread's figure up to date), run-queue wait from ``/proc/thread-self/schedstat``
    (its second field; where that is missing, the CPU time alone). Not the on-CPU time of
    schedstat: for the running thread it is only updated at a tick or a switch, so a
    0.1-0.2 ms copy from the page cache looked like storage wait, and a scan of a warm
    local disk read ahead in 32 threads (issue 16, measured at load 20: +60 % CPU).
    """

    def __init__(self) -> None:
        try:
            self.fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
            os.pread(self.fd, 128, 0)
        except OSError:
            self.fd = None

    def __call__(self) -> float:
        cpu = time.thread_time()
        if self.fd is None:
            return cpu
        return cpu + int(os.pread(self.fd, 128, 0).split(maxsplit=2)[1]) / 1e9

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(len(payload).to_bytes(_HEADER, "little"))
    out.write(payload)
    out.flush()


def scan_workers(n: int, io_depth: int | None = None) -> Workers | None:
    """Workers for a scan that will read every file, started first thing.

    They take ~20 ms to start, and the scanning process has ~0.1 s of DuckDB to
    import and open meanwhile: if there are no more cores than workers, one of
    them waits (:meth:`Workers.activate`) so that this process keeps a core.
    """
    if n < 2:
        return None
    return Workers(n, n - 1 if (os.cpu_count() or 1) <= n else None, io_depth)


class Workers:
    """``n`` worker processes fed from one queue of path chunks; results come back unordered.

    One feeder and one reader thread per worker move the bytes, so a worker
    gets its next chunk while the calling thread writes to the index. The
    calling thread submits chunks, collects finished ones with :meth:`poll`
    (non-blocking) or :meth:`results` (until all are done), and must call
    :meth:`close`.
    """

    def __init__(self, n: int, active: int | None = None, io_depth: int | None = None) -> None:
        """Start ``n`` workers; only the first ``active`` get work until :meth:`activate`.

        ``io_depth``: reads in flight at most, over all workers (default :data:`IO_DEPTH`).
        """
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
        depth = max(1, (io_depth or IO_DEPTH) // n)
        try:
            for _ in range(n):
                self.procs.append(subprocess.Popen(
                    [sys.executable, *flags, "-c", _WORKER, str(depth), str(IO_BYTES // n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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
                threading.Thread(target=self._run, args=(target, p, credit, ended), daemon=True).start()
            self._readers += 1

    def activate(self) -> None:
        """Give work to the workers held back at the start, too."""
        held, self._held = self._held, []
        for credit in held:
            for _ in range(CREDIT):
                credit.release()

    def submit(self, paths: list[bytes], sizes: list[int] | None = None) -> None:
        """Queue one chunk of paths (and their sizes, as walked) for whichever worker is free first."""
        chunk = (paths, sizes or [0] * len(paths))
        self._work.put(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
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

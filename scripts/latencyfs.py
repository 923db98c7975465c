#!/usr/bin/env python3
"""A read-only passthrough FUSE file system that adds a fixed delay to each open, read and listing.

For benchmarks and tests of scanning on high-latency storage (a NAS over NFS or
SMB, a tape library's staging disk): every open(), every read request and every
directory listing waits ``--delay-ms`` before it is served, as a round trip to a
server would. It is multithreaded (libfuse's thread pool, ``max_threads``), so
concurrent requests wait at the same time, as they do on a NAS; attributes
(getattr) are served without delay, as NFS's attribute cache and READDIRPLUS do.

    scripts/latencyfs.py SOURCE MOUNTPOINT [--delay-ms 2] [--threads 64]

Runs in the foreground until unmounted (``fusermount3 -u MOUNTPOINT``) or
interrupted. Needs /dev/fuse, libfuse3 (Debian ``fuse3``) and ``mfusepy``.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from typing import Any

import mfusepy as fuse


class LatencyFS(fuse.Operations):  # type: ignore[misc]
    """Passthrough of ``source``, read-only, with ``delay`` seconds on open, read and readdir."""

    use_ns = True

    def __init__(self, source: str, delay: float) -> None:
        self.source = os.path.realpath(source)
        self.delay = delay

    def _real(self, path: str) -> str:
        return self.source + path

    def _wait(self) -> None:
        if self.delay:
            time.sleep(self.delay)  # releases the GIL: concurrent requests wait together

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        try:
            st = os.lstat(self._real(path))
        except OSError as e:
            raise fuse.FuseOSError(e.errno) from None
        return {k: getattr(st, k) for k in (
            "st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_ino",
            "st_atime_ns", "st_mtime_ns", "st_ctime_ns")} | {
            "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}

    def readlink(self, path: str) -> str:
        return os.readlink(self._real(path))

    def readdir(self, path: str, fh: int) -> list[str]:
        self._wait()
        try:
            return [".", "..", *os.listdir(self._real(path))]
        except OSError as e:
            raise fuse.FuseOSError(e.errno) from None

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise fuse.FuseOSError(errno.EROFS)
        self._wait()
        try:
            return os.open(self._real(path), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            raise fuse.FuseOSError(e.errno) from None

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        self._wait()
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def statfs(self, path: str) -> dict[str, Any]:
        st = os.statvfs(self._real(path))
        return {k: getattr(st, k) for k in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_namemax")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("mountpoint")
    ap.add_argument("--delay-ms", type=float, default=2.0, help="delay per open, read and listing (ms)")
    ap.add_argument("--threads", type=int, default=64, help="libfuse threads serving requests at once")
    a = ap.parse_args()
    if not os.path.isdir(a.source):
        sys.exit(f"latencyfs: error: {a.source} is not a folder")
    fuse.FUSE(LatencyFS(a.source, a.delay_ms / 1000), a.mountpoint, foreground=True, ro=True,
              max_threads=a.threads, max_idle_threads=a.threads, fsname="latencyfs")


if __name__ == "__main__":
    main()

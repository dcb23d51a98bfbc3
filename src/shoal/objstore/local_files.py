"""Create-only writes of objects in a local folder, durable before they return.

obstore's LocalStore writes through the page cache and never syncs, so an acknowledged segment
file could vanish in a power loss while its batches stay committed in SQLite (which does sync).
Here a put creates the file under its final name with O_EXCL (create-only: FileExistsError if
the name is taken), writes it, `fdatasync`s it and syncs the directory, so the file and its
name are on disk before the metadata commit that makes its batches visible.

No staging file and rename: nothing reads an object before its metadata commit names it (the
read path only opens committed files), a failed write removes its file before raising, and a
file left half-written by a crash was never committed, so the garbage collector's orphan pass
deletes it like any uncommitted segment. That saves an inode, a link and an unlink per put,
about a millisecond of each segment's ack latency on this machine kind.

Objects up to DIRECT_BYTES_MAX are written with O_DIRECT from a page-aligned buffer that each
worker thread keeps (padded to whole blocks, then cut back with ftruncate). That skips the page
cache: no copy into it and, more to the point on a virtual machine, no fresh page-cache pages
to fault in for every segment (first touches cost far more than the copy). File systems that
refuse O_DIRECT (EINVAL) get buffered writes; the refusal is remembered per root. Reads go
through obstore and the page cache as before; the agent's block cache keeps the tail it wrote.
Measured in the agent, 1 GiB of idempotent produce, 3 interleaved runs: 412-453 MB/s and
0.67-0.75 s of kernel CPU, against 383-420 MB/s and 0.95-1.28 s buffered (both synced).

The layout is obstore's (`<root>/<key>`), so reads, lists and deletes still go through
LocalStore. These functions block: callers run them in a worker thread.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import mmap
import os
import threading

_DIR_MODE = 0o755
_FILE_MODE = 0o644
_ALIGN = 4096  # O_DIRECT wants the buffer, the length and the offset aligned to the block size
# Larger objects are written through the page cache (a thread's aligned buffer stays this big).
DIRECT_BYTES_MAX = 16 * 1024 * 1024
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_direct_unsupported: set[str] = set()  # roots whose file system refused O_DIRECT
_local = threading.local()
# Directories known to exist (bounded; a day's directory is asked for on every put).
_made_dirs: set[str] = set()
_MADE_DIRS_MAX = 1024
# linux/fs.h: FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (_IOR/_IOW('f', 1/2, long)), FS_TOPDIR_FL.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def put_create(root: str, key: str, data: bytes | memoryview) -> None:
    """Write `data` at `root/key` unless the name exists (then FileExistsError)."""
    path = os.path.join(root, key)
    directory = os.path.dirname(path)
    _ensure_dirs(root, directory)
    direct = bool(_O_DIRECT) and len(data) <= DIRECT_BYTES_MAX and root not in _direct_unsupported
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    if direct:
        try:
            fd = os.open(path, flags | _O_DIRECT, _FILE_MODE)
        except FileNotFoundError:
            direct = False  # the directory is gone: made again below
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _direct_unsupported.add(root)  # e.g. tmpfs
            direct = False
    if not direct:
        try:
            fd = os.open(path, flags, _FILE_MODE)
        except FileNotFoundError:
            # The directory went away since we made it (an operator's cleanup): make it again.
            _made_dirs.discard(directory)
            _ensure_dirs(root, directory)
            fd = os.open(path, flags, _FILE_MODE)
    try:
        if direct:
            _write_direct(fd, data)
        else:
            _write_all(fd, data)
        os.fdatasync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    os.close(fd)
    _sync_dir(directory)


def _ensure_dirs(root: str, directory: str) -> None:
    """Create the missing directories from `root` down to `directory`, each marked as a
    "top directory" for ext4's allocator (FS_TOPDIR_FL, what `chattr +T` sets): its
    subdirectories are then placed in block groups of their own instead of next to their
    parent. Each day's segment directory thus lands away from inodes freed nearby, which
    ext4 without a journal skips one by one on every file it creates (docs/object-store.md).
    Best effort: other file systems refuse the flag and nothing changes."""
    if directory in _made_dirs:
        return
    os.makedirs(root, mode=_DIR_MODE, exist_ok=True)
    path = root
    relative = os.path.relpath(directory, root)
    for part in relative.split(os.sep) if relative != os.curdir else ():
        path = os.path.join(path, part)
        try:
            os.mkdir(path, _DIR_MODE)
        except FileExistsError:
            continue
        _mark_top_dir(path)
    if len(_made_dirs) >= _MADE_DIRS_MAX:
        _made_dirs.clear()
    _made_dirs.add(directory)


def _mark_top_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        flags[0] |= _FS_TOPDIR_FL
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
    except OSError:
        pass  # not ext2/3/4 (or not permitted): the placement is the file system's own
    finally:
        os.close(fd)


def _write_direct(fd: int, data: bytes | memoryview) -> None:
    size = len(data)
    padded = -(-size // _ALIGN) * _ALIGN
    buf = _aligned_buffer(padded)
    buf[:size] = data
    buf[size:padded] = bytes(padded - size)
    _write_all(fd, memoryview(buf)[:padded])
    os.ftruncate(fd, size)


def _aligned_buffer(size: int) -> mmap.mmap:
    """This thread's page-aligned buffer of at least `size` bytes (reused: its pages stay
    mapped, which is the point on a VM where first touches are dear)."""
    buf: mmap.mmap | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        if buf is not None:
            buf.close()
        buf = mmap.mmap(-1, max(size, 2 * 1024 * 1024))
        _local.buf = buf
    return buf


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _sync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

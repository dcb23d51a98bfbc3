"""Local-folder puts: create-only, synced before they return, no half file after a failure."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from shoal.objstore import ObjectExistsError, ObjectStore, local_files


def test_put_syncs_file_then_directory_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync

    def fdatasync(fd: int) -> None:
        calls.append(("fdatasync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fdatasync(fd)

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "fsync", fsync)
    local_files.put_create(str(tmp_path), "segments/2026/11/26/a.seg", b"x" * 100_000)
    target = tmp_path / "segments/2026/11/26/a.seg"
    assert calls == [("fdatasync", str(target)), ("fsync", str(target.parent))]
    assert target.read_bytes() == b"x" * 100_000


def test_put_refuses_an_existing_name_and_keeps_its_bytes(tmp_path: Path) -> None:
    local_files.put_create(str(tmp_path), "k", b"first")
    with pytest.raises(FileExistsError):
        local_files.put_create(str(tmp_path), "k", b"second")
    assert (tmp_path / "k").read_bytes() == b"first"


@pytest.fixture(params=["direct", "buffered"])
def write_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "buffered":
        monkeypatch.setattr(local_files, "_O_DIRECT", 0)
    return str(request.param)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 1_000_003])
def test_bytes_read_back_exactly_in_either_mode(
    tmp_path: Path, write_mode: str, size: int
) -> None:
    data = os.urandom(size)
    local_files.put_create(str(tmp_path), f"k{size}", data)
    # O_DIRECT writes whole blocks; the file is cut back to the object's size.
    assert (tmp_path / f"k{size}").read_bytes() == data


def test_file_system_without_o_direct_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    direct_tries = []

    def no_direct(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & local_files._O_DIRECT:
            direct_tries.append(path)
            raise OSError(22, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_direct)
    monkeypatch.setattr(local_files, "_direct_unsupported", set())
    local_files.put_create(str(tmp_path), "a", b"first")
    local_files.put_create(str(tmp_path), "b", b"second")
    assert (tmp_path / "a").read_bytes() == b"first"
    assert (tmp_path / "b").read_bytes() == b"second"
    assert len(direct_tries) == 1  # the refusal is remembered per root


def test_failed_sync_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_mode: str
) -> None:
    def fail(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", fail)
    with pytest.raises(OSError, match="Input/output"):
        local_files.put_create(str(tmp_path), "segments/x.seg", b"y" * 10_000)
    assert not (tmp_path / "segments/x.seg").exists()


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_files, "_O_DIRECT", 0)  # short writes: the buffered path
    real_write = os.write

    def short_then_fail(fd: int, data: memoryview) -> int:
        if len(data) < 1000:
            raise OSError(28, "No space left on device")
        return real_write(fd, data[:500])

    monkeypatch.setattr(os, "write", short_then_fail)
    with pytest.raises(OSError, match="No space"):
        local_files.put_create(str(tmp_path), "segments/x.seg", b"y" * 1000)
    assert not (tmp_path / "segments/x.seg").exists()
    monkeypatch.setattr(os, "write", real_write)
    # The name is free again: a retry of the same put succeeds.
    local_files.put_create(str(tmp_path), "segments/x.seg", b"y" * 1000)
    assert (tmp_path / "segments/x.seg").read_bytes() == b"y" * 1000


async def test_concurrent_puts_of_one_key_store_one_of_them(tmp_path: Path) -> None:
    store = ObjectStore.from_url(f"file://{tmp_path}", timeout_ms=5_000)
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    results = await asyncio.gather(
        *(store.put_create("segments/same.seg", p) for p in payloads), return_exceptions=True
    )
    winners = [p for p, r in zip(payloads, results, strict=True) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, ObjectExistsError) for r in results if r is not None)
    # Whatever won is whole, readable through obstore's LocalStore.
    assert await store.get("segments/same.seg") == winners[0]
    assert [m.key for m in await store.list("segments")] == ["segments/same.seg"]


def _dir_flags(path: Path) -> int | None:
    import array
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, local_files._FS_IOC_GETFLAGS, flags, True)
        return int(flags[0])
    except OSError:
        return None  # a file system without inode flags (tmpfs, overlayfs, ...)
    finally:
        os.close(fd)


def test_new_directories_are_marked_as_top_directories(tmp_path: Path) -> None:
    local_files.put_create(str(tmp_path), "segments/2026/11/26/a.seg", b"a")
    local_files.put_create(str(tmp_path), "segments/2026/11/27/b.seg", b"b")
    created = [
        tmp_path / "segments",
        tmp_path / "segments/2026",
        tmp_path / "segments/2026/11",
        tmp_path / "segments/2026/11/26",
        tmp_path / "segments/2026/11/27",
    ]
    assert (tmp_path / "segments/2026/11/27/b.seg").read_bytes() == b"b"
    if _dir_flags(tmp_path) is None:
        return  # nothing to mark here; the puts above must still have worked
    for directory in created:
        flags = _dir_flags(directory)
        assert flags is not None and flags & local_files._FS_TOPDIR_FL, directory
    # The root was not made by us: left as it was.
    root_flags = _dir_flags(tmp_path)
    assert root_flags is not None and not root_flags & local_files._FS_TOPDIR_FL


def test_directory_removed_behind_our_back_is_made_again(tmp_path: Path) -> None:
    import shutil

    local_files.put_create(str(tmp_path), "segments/2026/11/26/a.seg", b"a")
    shutil.rmtree(tmp_path / "segments")
    local_files.put_create(str(tmp_path), "segments/2026/11/26/b.seg", b"b")
    assert (tmp_path / "segments/2026/11/26/b.seg").read_bytes() == b"b"

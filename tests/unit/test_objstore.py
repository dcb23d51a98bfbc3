from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from obstore.exceptions import AlreadyExistsError, GenericError

from shoal import metrics
from shoal.objstore import ObjectExistsError, ObjectStore, ObjectStoreError


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return ObjectStore.from_url("memory://", timeout_ms=5_000)
    return ObjectStore.from_url(f"file://{tmp_path}/objects", timeout_ms=5_000)


async def test_put_get_range_list_delete(store: ObjectStore) -> None:
    await store.put_create("segments/a/1.seg", b"0123456789")
    await store.put_create("segments/b/2.seg", memoryview(b"abc"))
    await store.put_create("other/x", b"zz")

    assert await store.get("segments/a/1.seg") == b"0123456789"
    assert await store.get_range("segments/a/1.seg", 2, 5) == b"234"
    assert await store.get_range("segments/a/1.seg", 5, 5) == b""

    listed = await store.list("segments")
    assert sorted((m.key, m.size) for m in listed) == [
        ("segments/a/1.seg", 10),
        ("segments/b/2.seg", 3),
    ]
    assert len(await store.list("segments", limit=1)) == 1
    assert (await store.head("other/x")).size == 2

    await store.delete("segments/a/1.seg")
    with pytest.raises(FileNotFoundError):
        await store.get("segments/a/1.seg")
    # Deleting again is fine: garbage collection may repeat itself.
    await store.delete("segments/a/1.seg")
    assert [m.key for m in await store.list("segments")] == ["segments/b/2.seg"]


async def test_create_only_put_refuses_existing_key(store: ObjectStore) -> None:
    await store.put_create("k", b"first")
    with pytest.raises(ObjectExistsError):
        await store.put_create("k", b"second")
    assert await store.get("k") == b"first"


async def test_file_url_creates_directory(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "objects"
    store = ObjectStore.from_url(f"file://{root}", timeout_ms=1_000)
    await store.put_create("segments/2024/01/01/x.seg", b"data")
    assert (root / "segments/2024/01/01/x.seg").read_bytes() == b"data"


def test_relative_file_url_is_refused() -> None:
    with pytest.raises(ValueError):
        ObjectStore.from_url("file://relative/dir", timeout_ms=1_000)


def test_s3_url_query_becomes_config() -> None:
    store = ObjectStore.from_url(
        "s3://bucket/prefix?endpoint=http://127.0.0.1:9&region=us-east-1"
        "&access_key_id=a&secret_access_key=b",
        timeout_ms=1_000,
    )
    assert "bucket" in repr(store._inner)
    assert "prefix" in repr(store._inner)


async def test_counts_requests_bytes_and_errors() -> None:
    store = ObjectStore.from_url("memory://", timeout_ms=1_000)
    before = metrics.OBJECT_STORE_REQUESTS.labels(op="put", cause="other")._value.get()
    await store.put_create("a", b"12345")
    await store.get("a")
    await store.get_range("a", 0, 2)
    with pytest.raises(FileNotFoundError):
        await store.get("missing")
    await store.list("")
    await store.delete("a")
    assert store.counts == {"put": 1, "get": 3, "list": 1, "delete": 1}
    assert store.bytes["put"] == 5
    assert store.bytes["get"] == 7
    # A miss is an answer, not an error.
    assert store.errors["get"] == 0
    assert metrics.OBJECT_STORE_REQUESTS.labels(op="put", cause="other")._value.get() == before + 1


class _Flaky:
    """Wraps an obstore call, failing the first `failures` attempts with `exc`."""

    def __init__(self, real: Callable[..., Awaitable[Any]], failures: int, exc: Exception) -> None:
        self.real = real
        self.failures = failures
        self.exc = exc
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return await self.real(*args, **kwargs)


def _fast(store: ObjectStore) -> ObjectStore:
    store.backoff_initial_ms = 1
    store.backoff_max_ms = 2
    return store


async def test_get_retries_transient_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import obstore

    store = _fast(ObjectStore.from_url("memory://", timeout_ms=1_000))
    await store.put_create("a", b"xyz")
    flaky = _Flaky(obstore.get_range_async, 2, GenericError("503 Slow Down"))
    monkeypatch.setattr(obstore, "get_range_async", flaky)
    assert await store.get_range("a", 0, 3) == b"xyz"
    assert flaky.calls == 3
    assert store.errors["get"] == 2
    assert store.counts["get"] == 3


async def test_retries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import obstore

    store = _fast(ObjectStore.from_url("memory://", timeout_ms=1_000))
    flaky = _Flaky(obstore.delete_async, 100, GenericError("500"))
    monkeypatch.setattr(obstore, "delete_async", flaky)
    with pytest.raises(ObjectStoreError):
        await store.delete("a")
    assert flaky.calls == store.attempts_max


async def test_timeout_is_enforced_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    import obstore

    store = _fast(ObjectStore.from_url("memory://", timeout_ms=20))
    store.attempts_max = 2
    calls = 0

    async def hang(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)

    monkeypatch.setattr(obstore, "get_async", hang)
    with pytest.raises(TimeoutError):
        await store.get("a")
    assert calls == 2
    assert store.errors["get"] == 2


async def test_put_retry_meeting_its_own_write_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    import obstore

    store = _fast(ObjectStore.from_url("memory://", timeout_ms=1_000))
    real_put = obstore.put_async
    calls = 0

    async def lands_then_fails(*args: Any, **kwargs: Any) -> Any:
        # First attempt stores the object but the reply is lost (5xx / dropped connection).
        nonlocal calls
        calls += 1
        result = await real_put(*args, **kwargs)
        if calls == 1:
            raise GenericError("502 Bad Gateway")
        return result

    monkeypatch.setattr(obstore, "put_async", lands_then_fails)
    await store.put_create("seg", b"payload")
    assert calls == 2
    assert await store.get("seg") == b"payload"


async def test_put_retry_finding_other_bytes_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import obstore

    store = _fast(ObjectStore.from_url("memory://", timeout_ms=1_000))
    await store.put_create("seg", b"somebody else's longer bytes")
    flaky = _Flaky(obstore.put_async, 1, GenericError("503"))
    monkeypatch.setattr(obstore, "put_async", flaky)
    with pytest.raises(ObjectExistsError):
        await store.put_create("seg", b"mine")
    assert flaky.calls == 2


async def test_non_transient_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    import obstore

    store = _fast(ObjectStore.from_url("memory://", timeout_ms=1_000))
    flaky = _Flaky(obstore.put_async, 100, AlreadyExistsError("exists"))
    monkeypatch.setattr(obstore, "put_async", flaky)
    with pytest.raises(ObjectExistsError):
        await store.put_create("seg", b"mine")
    assert flaky.calls == 1

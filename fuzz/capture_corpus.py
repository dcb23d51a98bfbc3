"""Write the fuzz seed corpus (fuzz/corpus/<target>/) from real clients talking to a real agent.

    PYTHONPATH=src:. .venv/bin/python fuzz/capture_corpus.py

Starts a `shoal agent` process (tests/agent_process.py) listening on 127.0.0.2 and advertising
127.0.0.1, and a recording TCP proxy on 127.0.0.1 at the same port, so that every connection a
client opens, bootstrap or advertised, goes through the proxy. confluent-kafka (librdkafka) and
kafka-python then create a topic, read metadata, produce with every codec, consume with a
group and look up offsets by time (tests/integration/workload.py). What the clients sent is
cut into request frames and written, deduplicated and capped, as:

- frames/: each connection's first bytes (up to 64 KiB) as the client sent them;
- requests/: request frames, at most 3 per (api key, version);
- batches/: the records fields of Produce requests;
- segments/: the smallest segment files the agent wrote;
- peer_wire/: block-read requests and responses built with peer_wire's encoder (agents of one
  process talk to no peers, so there is no traffic to record).

Files are named by their SHA-1, as libFuzzer names the inputs it adds.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from tests.agent_process import AgentProcess
from tests.integration import workload

from shoal.common.ports import free_ports
from shoal.protocol.apis import ApiKey
from shoal.protocol.framing import decode_request
from shoal.protocol.wire import I32
from shoal.read.peer_wire import FileRanges, encode_request, length_prefix

CORPUS = Path(__file__).resolve().parent / "corpus"
AGENT_HOST = "127.0.0.2"
CLIENT_HOST = "127.0.0.1"
STREAM_BYTES_MAX = 64 * 1024
FRAME_BYTES_MAX = 64 * 1024
PER_VERSION = 3
BATCHES_MAX = 40
SEGMENTS_MAX = 8
STREAMS_MAX = 40
RECORDS = 200


class RecordingProxy:
    """Forwards 127.0.0.1:port to the agent and keeps what each client sent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: list[bytearray] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RecordingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, CLIENT_HOST, self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(AGENT_HOST, self.port)
        except OSError:  # AgentProcess.start probing the port before the agent listens
            writer.close()
            return
        sent = bytearray()
        self.streams.append(sent)

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bytearray | None
        ) -> None:
            try:
                while data := await src.read(65536):
                    if keep is not None:
                        keep += data
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, sent), pipe(up_reader, writer, None))


def wait_for_agent(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((AGENT_HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"agent did not listen on {AGENT_HOST}:{port}")


def run_clients(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("corpus", 3, 1)])["corpus"].result(30)
    admin.list_topics(timeout=10)
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        workload.produce_confluent(bootstrap, "corpus", RECORDS, 3, codec)
        workload.produce_kafka_python(bootstrap, "corpus", RECORDS, 3, codec)
    workload.consume_confluent(bootstrap, "corpus", 10 * RECORDS, 3)
    consume_in_groups(bootstrap, "corpus")
    workload.consume_kafka_python(bootstrap, "corpus", 10 * RECORDS, 3)
    workload.watermarks_confluent(bootstrap, "corpus", 3)
    workload.offsets_for_times_confluent(bootstrap, "corpus", [(0, 0), (1, 2**40)])


def consume_in_groups(bootstrap: str, topic: str) -> None:
    """A subscribed consumer of each client: JoinGroup, SyncGroup, Heartbeat, OffsetCommit,
    OffsetFetch, LeaveGroup."""
    from confluent_kafka import Consumer
    from kafka import KafkaConsumer  # type: ignore[import-untyped]

    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "corpus-c", "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    deadline = time.monotonic() + 60
    got = 0
    while got < 100 and time.monotonic() < deadline:
        got += len(c.consume(100, 1.0))
    c.commit(asynchronous=False)
    c.close()
    k = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id="corpus-k", auto_offset_reset="earliest"
    )
    deadline = time.monotonic() + 60
    got = 0
    while got < 100 and time.monotonic() < deadline:
        got += sum(len(v) for v in k.poll(1000).values())
    k.commit()
    k.close()


def frames_of(stream: bytes) -> list[bytes]:
    out = []
    pos = 0
    while len(stream) - pos >= 4:
        (size,) = I32.unpack_from(stream, pos)
        if size < 8 or pos + 4 + size > len(stream):
            break
        out.append(stream[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


def write(target: str, blobs: list[bytes]) -> None:
    folder = CORPUS / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for blob in dict.fromkeys(blobs):  # dedupe, keep order
        (folder / hashlib.sha1(blob).hexdigest()).write_bytes(blob)
    print(f"{target}: {len(list(folder.iterdir()))} files", file=sys.stderr)


def peer_wire_seeds() -> list[bytes]:
    seeds = []
    cases = [
        [FileRanges("segments/2026/01/01/01J0000000000000000000000.seg", 4096, [(0, 16)])],
        [FileRanges("a", 100, [(0, 10), (90, 10)]), FileRanges("b", 5, [(0, 0)])],
    ]
    for files in cases:
        request = encode_request(files)
        parts = []
        for f in files:
            for i, (_, length) in enumerate(f.ranges):
                if i % 2:
                    parts.append(length_prefix(-1))  # ERR_READ
                else:
                    parts.append(length_prefix(length) + bytes(length))
        seeds.append(struct.pack(">I", len(request)) + request + b"".join(parts))
    return seeds


def main() -> int:
    port, http_port = free_ports(2)
    with tempfile.TemporaryDirectory(prefix="shoal-corpus-") as tmp:
        proxy = RecordingProxy(port).start()
        agent = AgentProcess(
            Path(tmp) / "agent",
            [
                *("--kafka-host", AGENT_HOST, "--advertised-host", CLIENT_HOST),
                *("--http-host", AGENT_HOST, "--flush-interval-ms", "20"),
            ],
            kafka_port=port,
            http_port=http_port,
        )
        agent.start()  # returns at once: what it waits for, 127.0.0.1:port, is the proxy
        try:
            wait_for_agent(port)
            run_clients(f"{CLIENT_HOST}:{port}")
        finally:
            agent.stop()
            proxy.stop()
        segments = sorted(Path(tmp).rglob("*.seg"), key=lambda p: p.stat().st_size)
        segment_blobs = [p.read_bytes() for p in segments[:SEGMENTS_MAX]]

    streams = [bytes(s[:STREAM_BYTES_MAX]) for s in proxy.streams if s]
    requests: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    batches: list[bytes] = []
    for stream in proxy.streams:
        for frame in frames_of(bytes(stream)):
            key, version = struct.unpack_from(">hh", frame)
            if len(frame) <= FRAME_BYTES_MAX and len(requests[(key, version)]) < PER_VERSION:
                requests[(key, version)].append(frame)
            if key == ApiKey.PRODUCE and len(batches) < BATCHES_MAX:
                _, request = decode_request(frame)
                for topic in request.topic_data:
                    batches.extend(p.records for p in topic.partition_data if p.records)
    write("frames", sorted(streams, key=len)[:STREAMS_MAX])
    write("requests", [f for frames in requests.values() for f in frames])
    write("batches", [bytes(b) for b in batches if len(b) <= FRAME_BYTES_MAX][:BATCHES_MAX])
    write("segments", segment_blobs)
    write("peer_wire", peer_wire_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())

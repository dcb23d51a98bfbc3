// KafkaJS against a Shoal agent: an idempotent producer writes keyed records with headers and
// timestamps, a consumer group reads them back from the beginning; the result is checked here
// and printed as one JSON line for the Python test that runs this script.
//
//   node compat/kafkajs/roundtrip.js BOOTSTRAP TOPIC RECORDS PARTITIONS COMPRESSION
//
// COMPRESSION: none | gzip (KafkaJS ships only gzip; the other codecs need plugins).
'use strict';

const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const [bootstrap, topic, recordsArg, partitionsArg, codec] = process.argv.slice(2);
const records = Number(recordsArg);
const partitions = Number(partitionsArg);
const BATCH = 500;
const DEADLINE_MS = 120000;

function fail(message) {
  console.log(JSON.stringify({ ok: false, error: message }));
  process.exit(1);
}

async function main() {
  const kafka = new Kafka({
    clientId: 'shoal-kafkajs-compat',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  await admin.disconnect();

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const compression = codec === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  const baseTs = Date.now() - 60000;
  const sent = new Map(); // key -> {partition, offset, value, ts, header}
  for (let start = 0; start < records; start += BATCH) {
    const messages = [];
    for (let i = start; i < Math.min(records, start + BATCH); i++) {
      messages.push({
        key: `k-${i}`,
        value: `v-${i}-${'x'.repeat(i % 200)}`,
        partition: i % partitions,
        timestamp: String(baseTs + i),
        headers: { seq: String(i) },
      });
    }
    const acks = await producer.send({ topic, messages, acks: -1, compression });
    for (const ack of acks) {
      if (ack.errorCode !== 0) fail(`produce error ${ack.errorCode} on partition ${ack.partition}`);
    }
    for (const m of messages) sent.set(m.key, m);
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `${topic}-group`, sessionTimeout: 10000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const seen = new Map();
  const lastOffset = new Map();
  let problems = [];
  let resolveDone;
  const done = new Promise((resolve) => { resolveDone = resolve; });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const key = message.key.toString();
      const offset = Number(message.offset);
      const prev = lastOffset.has(partition) ? lastOffset.get(partition) : -1;
      if (offset <= prev) problems.push(`partition ${partition}: offset ${offset} after ${prev}`);
      lastOffset.set(partition, offset);
      const want = sent.get(key);
      if (!want) problems.push(`unknown key ${key}`);
      else if (seen.has(key)) problems.push(`duplicate ${key}`);
      else if (want.partition !== partition) problems.push(`${key} on partition ${partition}`);
      else if (message.value.toString() !== want.value) problems.push(`${key}: value differs`);
      else if (message.timestamp !== want.timestamp) problems.push(`${key}: timestamp differs`);
      else if (!message.headers.seq || message.headers.seq.toString() !== want.headers.seq) {
        problems.push(`${key}: header differs`);
      }
      seen.set(key, offset);
      if (seen.size === records) resolveDone();
    },
  });
  const timer = setTimeout(resolveDone, DEADLINE_MS);
  await done;
  clearTimeout(timer);
  // Committed offsets of the group once everything was read: one past the last record.
  await consumer.commitOffsets(
    [...lastOffset.entries()].map(([partition, offset]) => ({
      topic, partition, offset: String(offset + 1),
    })),
  );
  await consumer.disconnect();

  const admin2 = kafka.admin();
  await admin2.connect();
  const ends = await admin2.fetchTopicOffsets(topic);
  const committed = await admin2.fetchOffsets({ groupId: `${topic}-group`, topics: [topic] });
  await admin2.disconnect();
  const highWatermarks = {};
  for (const p of ends) highWatermarks[p.partition] = Number(p.high);
  const committedOffsets = {};
  for (const p of committed[0].partitions) committedOffsets[p.partition] = Number(p.offset);

  console.log(JSON.stringify({
    ok: problems.length === 0 && seen.size === records,
    produced: sent.size,
    consumed: seen.size,
    problems: problems.slice(0, 10),
    highWatermarks,
    committedOffsets,
  }));
}

main().catch((err) => fail(String(err && err.stack ? err.stack : err)));

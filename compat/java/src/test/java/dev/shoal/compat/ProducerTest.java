package dev.shoal.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The producer with its default settings (idempotent, acks=all) and every codec: keys, null
 * keys, tombstones, headers and CreateTime timestamps come back as sent, at the offsets the
 * producer was acked with.
 */
class ProducerTest {
  private static final int PARTITIONS = 3;
  private static final int RECORDS = 3_000;
  private static final long BASE_TS = 1_700_000_000_000L;

  private record Sent(ProducerRecord<String, String> record, RecordMetadata meta) {}

  @Tag("quick")
  @ParameterizedTest
  @ValueSource(strings = {"none", "zstd"})
  void roundTripQuick(String codec) throws Exception {
    roundTrip(codec);
  }

  @ParameterizedTest
  @ValueSource(strings = {"gzip", "snappy", "lz4"})
  void roundTripOtherCodecs(String codec) throws Exception {
    roundTrip(codec);
  }

  private void roundTrip(String codec) throws Exception {
    String topic = Shoal.unique("java-produce-" + codec);
    Shoal.createTopic(topic, PARTITIONS);
    Properties props = Shoal.producerProps();
    props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
    // Small batches and a linger: many batches per partition, several records in each.
    props.put(ProducerConfig.BATCH_SIZE_CONFIG, "16384");
    props.put(ProducerConfig.LINGER_MS_CONFIG, "5");

    List<Future<RecordMetadata>> futures = new ArrayList<>();
    List<ProducerRecord<String, String>> records = new ArrayList<>();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      for (int i = 0; i < RECORDS; i++) {
        ProducerRecord<String, String> r = record(topic, codec, i);
        records.add(r);
        futures.add(producer.send(r));
      }
      producer.flush();
    }
    List<Sent> sent = new ArrayList<>();
    long[] nextOffset = new long[PARTITIONS];
    for (int i = 0; i < RECORDS; i++) {
      RecordMetadata meta = futures.get(i).get(Shoal.WAIT.toSeconds(), TimeUnit.SECONDS);
      int p = records.get(i).partition();
      assertEquals(p, meta.partition());
      // One producer, one partition: offsets are dense and in send order.
      assertEquals(nextOffset[p]++, meta.offset(), "offset of record " + i);
      sent.add(new Sent(records.get(i), meta));
    }

    List<ConsumerRecord<String, String>> got = Shoal.readAll(topic, PARTITIONS);
    got.sort(
        Comparator.<ConsumerRecord<String, String>>comparingInt(ConsumerRecord::partition)
            .thenComparingLong(ConsumerRecord::offset));
    sent.sort(
        Comparator.<Sent>comparingInt(s -> s.meta().partition())
            .thenComparingLong(s -> s.meta().offset()));
    assertEquals(RECORDS, got.size());
    for (int i = 0; i < RECORDS; i++) {
      Sent s = sent.get(i);
      ConsumerRecord<String, String> r = got.get(i);
      String where = "record at " + r.partition() + "/" + r.offset();
      assertEquals(s.meta().partition(), r.partition(), where);
      assertEquals(s.meta().offset(), r.offset(), where);
      assertEquals(s.record().key(), r.key(), where);
      assertEquals(s.record().value(), r.value(), where);
      assertEquals(TimestampType.CREATE_TIME, r.timestampType(), where);
      assertEquals(s.record().timestamp().longValue(), r.timestamp(), where);
      assertEquals(s.meta().timestamp(), r.timestamp(), where);
      Header[] want = s.record().headers().toArray();
      Header[] have = r.headers().toArray();
      assertEquals(want.length, have.length, where);
      for (int h = 0; h < want.length; h++) {
        assertEquals(want[h].key(), have[h].key(), where);
        assertArrayEquals(want[h].value(), have[h].value(), where);
      }
    }
  }

  /** Record i: every 10th has no key, every 7th is a tombstone, headers vary in number. */
  private static ProducerRecord<String, String> record(String topic, String codec, int i) {
    String key = i % 10 == 3 ? null : "key-" + i;
    String value = i % 7 == 5 ? null : ("value-" + i + "-" + codec + "-").repeat(1 + i % 5);
    RecordHeaders headers = new RecordHeaders();
    headers.add("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
    if (i % 2 == 0) {
      headers.add("codec", codec.getBytes(StandardCharsets.UTF_8));
      headers.add("empty", new byte[0]);
    }
    if (i % 3 == 0) {
      headers.add("null-value", null);
      headers.add("seq", "repeated key".getBytes(StandardCharsets.UTF_8));
    }
    // Out of order on purpose: a batch's timestamps need not rise.
    long ts = BASE_TS + (i % 4 == 1 ? -i : i) * 1_000L;
    return new ProducerRecord<>(topic, i % PARTITIONS, ts, key, value, headers);
  }

  /** A record without a timestamp gets the producer's send time, and that is what comes back. */
  @Tag("quick")
  @Test
  void producerTimestampWhenNoneGiven() throws Exception {
    String topic = Shoal.unique("java-produce-nots");
    Shoal.createTopic(topic, 1);
    long before = System.currentTimeMillis();
    RecordMetadata meta;
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Shoal.producerProps())) {
      meta = producer.send(new ProducerRecord<>(topic, "k", "v")).get();
    }
    long after = System.currentTimeMillis();
    List<ConsumerRecord<String, String>> got = Shoal.readAll(topic, 1);
    assertEquals(1, got.size());
    ConsumerRecord<String, String> r = got.get(0);
    assertEquals(meta.timestamp(), r.timestamp());
    assertEquals(TimestampType.CREATE_TIME, r.timestampType());
    assertEquals(true, before <= r.timestamp() && r.timestamp() <= after, "ts " + r.timestamp());
    assertEquals("k", r.key());
    assertEquals("v", r.value());
    assertNull(r.headers().lastHeader("seq"));
  }
}

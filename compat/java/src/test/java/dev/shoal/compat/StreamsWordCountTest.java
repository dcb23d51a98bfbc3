package dev.shoal.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Kafka Streams word count on two instances of one application, one bootstrapped to each of
 * two agents, at-least-once. groupBy(word) -> count() makes a repartition topic and a changelog
 * topic, both created by Streams through the AdminClient. exactly_once_v2 is left out: it needs
 * transactions, which Shoal does not serve yet (README.md).
 */
class StreamsWordCountTest {
  private static final int PARTITIONS = 4;
  private static final int LINES = 400;
  private static final List<String> WORDS =
      List.of(
          "shoal", "kafka", "stream", "segment", "object", "store", "agent", "zone", "group",
          "offset", "topic", "record", "batch", "fetch", "produce", "commit");
  /** Streams' own waits (rebalances, the first assignment) are slower than a client's. */
  private static final Duration STREAMS_WAIT = Duration.ofSeconds(180);

  @TempDir Path stateRoot;

  private static Properties streamsProps(
      String app, String bootstrap, Path stateRoot, String instance) throws Exception {
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
    props.put(StreamsConfig.STATE_DIR_CONFIG, Files.createDirectories(stateRoot.resolve(instance)).toString());
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
    // Streams purges consumed repartition records with DeleteRecords, which Shoal does not
    // serve yet: push the purge past the test's lifetime.
    props.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, Integer.MAX_VALUE);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass());
    props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass());
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    return props;
  }

  private static KafkaStreams wordCount(String input, String output, Properties props) {
    StreamsBuilder builder = new StreamsBuilder();
    KStream<String, String> lines = builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()));
    lines
        .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
        .filter((key, word) -> !word.isEmpty())
        .groupBy((key, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
        .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("word-counts"))
        .toStream()
        .to(output, Produced.with(Serdes.String(), Serdes.Long()));
    return new KafkaStreams(builder.build(), props);
  }

  private static List<String> inputLines() {
    Random random = new Random(11);
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < LINES; i++) {
      int n = 1 + random.nextInt(8);
      StringBuilder line = new StringBuilder();
      for (int w = 0; w < n; w++) {
        String word = WORDS.get(random.nextInt(WORDS.size()));
        // Mixed case and punctuation: the topology's split and lower-casing are part of what
        // the expected counts below reproduce.
        line.append(random.nextBoolean() ? word : word.toUpperCase(Locale.ROOT));
        line.append(w + 1 < n ? (random.nextBoolean() ? " " : ", ") : ".");
      }
      lines.add(line.toString());
    }
    return lines;
  }

  private static Map<String, Long> expectedCounts(List<String> lines) {
    Map<String, Long> counts = new TreeMap<>();
    for (String line : lines) {
      for (String word : line.toLowerCase(Locale.ROOT).split("\\W+")) {
        if (!word.isEmpty()) {
          counts.merge(word, 1L, Long::sum);
        }
      }
    }
    return counts;
  }

  private static boolean hasActiveTasks(KafkaStreams streams) {
    return streams.state() == KafkaStreams.State.RUNNING
        && streams.metadataForLocalThreads().stream()
            .mapToInt((ThreadMetadata t) -> t.activeTasks().size())
            .sum()
            > 0;
  }

  private static int activeTasks(KafkaStreams streams) {
    return streams.metadataForLocalThreads().stream()
        .mapToInt((ThreadMetadata t) -> t.activeTasks().size())
        .sum();
  }

  private static KafkaStreams[] startTwo(
      String app, String input, String output, Path stateRoot, List<Throwable> failures)
      throws Exception {
    KafkaStreams first = wordCount(input, output, streamsProps(app, Shoal.bootstrap(), stateRoot, "a"));
    KafkaStreams second = wordCount(input, output, streamsProps(app, Shoal.bootstrap2(), stateRoot, "b"));
    for (KafkaStreams s : List.of(first, second)) {
      s.setUncaughtExceptionHandler(
          e -> {
            failures.add(e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
          });
      s.start();
    }
    try {
      // Both instances own tasks before the input is written, so both do part of the count.
      waitFor(
          "both instances running with active tasks",
          failures,
          () -> hasActiveTasks(first) && hasActiveTasks(second));
    } catch (Throwable t) {
      first.close(Duration.ofSeconds(60));
      second.close(Duration.ofSeconds(60));
      throw t;
    }
    return new KafkaStreams[] {first, second};
  }

  private static void produce(String input, List<String> lines, int from, int to)
      throws Exception {
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Shoal.producerProps())) {
      for (int i = from; i < to; i++) {
        producer.send(new ProducerRecord<>(input, "line-" + i, lines.get(i)));
      }
      producer.flush();
    }
  }

  /** Reads the output from the start until the last count of every word equals `expected`. */
  private static void awaitCounts(String output, Map<String, Long> expected, List<Throwable> failures) {
    Map<String, Long> latest = new TreeMap<>();
    Properties consumerProps = Shoal.consumerProps(null);
    consumerProps.put(
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
    consumerProps.put(
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(consumerProps)) {
      List<TopicPartition> tps = Shoal.partitionsOf(output, PARTITIONS);
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      long deadline = System.nanoTime() + STREAMS_WAIT.toNanos();
      while (!latest.equals(expected)) {
        assertTrue(failures.isEmpty(), () -> "a Streams thread died: " + failures);
        assertTrue(
            System.nanoTime() < deadline,
            () -> "final counts never matched\nexpected " + expected + "\nlatest   " + latest);
        for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
          latest.put(r.key(), r.value());
        }
      }
    }
    assertEquals(expected, latest);
  }

  /** Closes every instance; fails if one did not close in time. */
  private static void closeAll(KafkaStreams... instances) {
    List<String> unclosed = new ArrayList<>();
    for (KafkaStreams s : instances) {
      if (!s.close(Duration.ofSeconds(60))) {
        unclosed.add(s.toString());
      }
    }
    assertTrue(unclosed.isEmpty(), () -> "did not close within 60 s: " + unclosed);
  }

  @Tag("quick")
  @Test
  void wordCountOnTwoInstancesAcrossTwoAgents() throws Exception {
    String app = Shoal.unique("wordcount");
    String input = app + "-lines";
    String output = app + "-counts";
    Shoal.createTopic(input, PARTITIONS);
    Shoal.createTopic(output, PARTITIONS);
    List<Throwable> failures = new CopyOnWriteArrayList<>();
    KafkaStreams[] instances = new KafkaStreams[0];
    try {
      instances = startTwo(app, input, output, stateRoot, failures);
      List<String> lines = inputLines();
      produce(input, lines, 0, lines.size());
      awaitCounts(output, expectedCounts(lines), failures);
      assertTrue(failures.isEmpty(), () -> "a Streams thread died: " + failures);

      // The internal topics Streams asked for exist: the repartition topic of groupBy and the
      // changelog of the count's store.
      try (Admin admin = Shoal.admin()) {
        Set<String> names = admin.listTopics().names().get();
        Set<String> internal =
            names.stream().filter(n -> n.startsWith(app + "-")).collect(Collectors.toSet());
        assertTrue(
            internal.contains(app + "-word-counts-repartition"), () -> "topics " + internal);
        assertTrue(internal.contains(app + "-word-counts-changelog"), () -> "topics " + internal);
      }
      closeAll(instances);
    } finally {
      // Already closed unless the test failed; a second close returns at once.
      for (KafkaStreams s : instances) {
        s.close(Duration.ofSeconds(60));
      }
    }
  }

  /**
   * One instance leaves halfway: the other takes its tasks over, restores their counts from the
   * changelog topic, and goes on counting from the committed offsets, so the final counts are
   * still exact.
   */
  @Test
  void countsStayExactWhenAnInstanceLeaves() throws Exception {
    String app = Shoal.unique("wordcount-handover");
    String input = app + "-lines";
    String output = app + "-counts";
    Shoal.createTopic(input, PARTITIONS);
    Shoal.createTopic(output, PARTITIONS);
    List<Throwable> failures = new CopyOnWriteArrayList<>();
    KafkaStreams[] instances = new KafkaStreams[0];
    try {
      instances = startTwo(app, input, output, stateRoot, failures);
      KafkaStreams stays = instances[0];
      List<String> lines = inputLines();
      int half = lines.size() / 2;
      produce(input, lines, 0, half);
      awaitCounts(output, expectedCounts(lines.subList(0, half)), failures);

      int before = activeTasks(stays);
      // Streams stays in the group on a plain close (its members come back with their state);
      // leaving at once makes the coordinator rebalance now, not after the session timeout.
      CloseOptions leave =
          CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
              .withTimeout(Duration.ofSeconds(60));
      assertTrue(instances[1].close(leave), "the leaving instance did not close within 60 s");
      instances = new KafkaStreams[] {stays};
      // Two sub-topologies (the split before the repartition topic, the count after it) of
      // PARTITIONS tasks each, all on the instance that stays.
      waitFor(
          "the remaining instance to own every task",
          failures,
          () -> stays.state() == KafkaStreams.State.RUNNING && activeTasks(stays) == 2 * PARTITIONS);
      assertTrue(before < 2 * PARTITIONS, "the leaving instance owned no tasks");

      produce(input, lines, half, lines.size());
      awaitCounts(output, expectedCounts(lines), failures);
      assertTrue(failures.isEmpty(), () -> "a Streams thread died: " + failures);
      closeAll(instances);
    } finally {
      // Already closed unless the test failed; a second close returns at once.
      for (KafkaStreams s : instances) {
        s.close(Duration.ofSeconds(60));
      }
    }
  }

  private static void waitFor(
      String what, List<Throwable> failures, java.util.function.BooleanSupplier condition)
      throws InterruptedException {
    long deadline = System.nanoTime() + STREAMS_WAIT.toNanos();
    while (!condition.getAsBoolean()) {
      assertTrue(failures.isEmpty(), () -> "a Streams thread died: " + failures);
      assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
      Thread.sleep(100);
    }
  }
}

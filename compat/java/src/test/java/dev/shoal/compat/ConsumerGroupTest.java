package dev.shoal.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Consumers in groups: the eager range and the cooperative-sticky assignors, static membership,
 * manual and auto commit, seeks by offset and by time.
 */
class ConsumerGroupTest {
  private static final int PARTITIONS = 6;
  private static final int PER_PARTITION = 100;
  private static final long BASE_TS = 1_710_000_000_000L;

  /** A consumer polled by its own thread; the rebalance callbacks are recorded as they come. */
  private static final class Member implements ConsumerRebalanceListener, AutoCloseable {
    final String name;
    final Set<TopicPartition> assignment = ConcurrentHashMap.newKeySet();
    final List<String> events = new CopyOnWriteArrayList<>();
    final List<ConsumerRecord<String, String>> records = new CopyOnWriteArrayList<>();
    final AtomicInteger generation = new AtomicInteger(-1);
    final AtomicBoolean commitNow = new AtomicBoolean();
    final AtomicBoolean committed = new AtomicBoolean();
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final Thread thread;
    private volatile Throwable failure;

    Member(String name, Properties props, String topic) {
      this.name = name;
      thread =
          new Thread(
              () -> {
                try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
                  consumer.subscribe(List.of(topic), this);
                  while (running.get()) {
                    for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
                      records.add(r);
                    }
                    generation.set(consumer.groupMetadata().generationId());
                    if (commitNow.getAndSet(false)) {
                      consumer.commitSync(Shoal.WAIT);
                      committed.set(true);
                    }
                  }
                } catch (Throwable t) {
                  failure = t;
                }
              },
              "member-" + name);
      thread.start();
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      assignment.addAll(partitions);
      events.add("assigned " + sorted(partitions));
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      assignment.removeAll(partitions);
      events.add("revoked " + sorted(partitions));
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      assignment.removeAll(partitions);
      events.add("lost " + sorted(partitions));
    }

    void checkAlive() {
      assertNull(failure, () -> name + " failed: " + failure);
      assertTrue(thread.isAlive(), name + " stopped");
    }

    void commit() throws InterruptedException {
      committed.set(false);
      commitNow.set(true);
      Shoal.waitUntil(name + " to commit", () -> committed.get() || failure != null);
      checkAlive();
    }

    @Override
    public void close() throws InterruptedException {
      running.set(false);
      thread.join(Shoal.WAIT.toMillis());
      assertNull(failure, () -> name + " failed: " + failure);
    }
  }

  private static TreeSet<Integer> sorted(Collection<TopicPartition> partitions) {
    return partitions.stream().map(TopicPartition::partition).collect(Collectors.toCollection(TreeSet::new));
  }

  private static Properties groupProps(String group, String assignor) {
    Properties props = Shoal.consumerProps(group);
    props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
    return props;
  }

  /** PER_PARTITION records into each partition; value "p-i" names where it must land. */
  private static void produce(String topic) throws Exception {
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Shoal.producerProps())) {
      for (int i = 0; i < PER_PARTITION; i++) {
        for (int p = 0; p < PARTITIONS; p++) {
          producer.send(new ProducerRecord<>(topic, p, BASE_TS + i * 10L, "k" + i, p + "-" + i));
        }
      }
      producer.flush();
    }
  }

  private static void waitForSplit(Member a, Member b) throws InterruptedException {
    Shoal.waitUntil(
        "the partitions to be split between both members",
        () -> {
          a.checkAlive();
          b.checkAlive();
          Set<TopicPartition> union = new HashSet<>(a.assignment);
          union.addAll(b.assignment);
          return !a.assignment.isEmpty()
              && !b.assignment.isEmpty()
              && a.assignment.size() + b.assignment.size() == PARTITIONS
              && union.size() == PARTITIONS
              && a.generation.get() > 0
              && a.generation.get() == b.generation.get();
        });
  }

  /** Both members together read every record exactly once, each from its own partitions. */
  private static void consumeExactlyOnce(String topic, Member a, Member b) throws Exception {
    produce(topic);
    Shoal.waitUntil(
        "all records to be read",
        () -> {
          a.checkAlive();
          b.checkAlive();
          return a.records.size() + b.records.size() >= PARTITIONS * PER_PARTITION;
        });
    Thread.sleep(300); // a duplicate delivered right after the last record would show here
    for (Member m : List.of(a, b)) {
      for (ConsumerRecord<String, String> r : m.records) {
        assertTrue(m.assignment.contains(new TopicPartition(topic, r.partition())), m.name + " read " + r);
        assertEquals(r.partition() + "-" + r.offset(), r.value());
      }
    }
    Set<String> values = new HashSet<>();
    a.records.forEach(r -> values.add(r.value()));
    b.records.forEach(r -> values.add(r.value()));
    assertEquals(PARTITIONS * PER_PARTITION, a.records.size() + b.records.size());
    assertEquals(PARTITIONS * PER_PARTITION, values.size());
  }

  private static void assertCommittedToEnd(String group, String topic) throws Exception {
    try (Admin admin = Shoal.admin()) {
      Map<TopicPartition, OffsetAndMetadata> committed =
          admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS);
      Map<TopicPartition, Long> offsets = new HashMap<>();
      committed.forEach((tp, om) -> offsets.put(tp, om.offset()));
      Map<TopicPartition, Long> want = new HashMap<>();
      Shoal.partitionsOf(topic, PARTITIONS).forEach(tp -> want.put(tp, (long) PER_PARTITION));
      assertEquals(want, offsets);
    }
  }

  private static ConsumerGroupDescription describe(String group) throws Exception {
    try (Admin admin = Shoal.admin()) {
      return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get(60, TimeUnit.SECONDS);
    }
  }

  @Tag("quick")
  @Test
  void eagerRangeAssignorSplitsPartitions() throws Exception {
    String topic = Shoal.unique("java-range");
    String group = Shoal.unique("g-range");
    Shoal.createTopic(topic, PARTITIONS);
    Properties props = groupProps(group, RangeAssignor.class.getName());
    try (Member a = new Member("a", props, topic); Member b = new Member("b", props, topic)) {
      waitForSplit(a, b);
      // Range: each member one contiguous half of the partitions.
      Set<Set<Integer>> halves = Set.of(sorted(a.assignment), sorted(b.assignment));
      assertEquals(Set.of(Set.of(0, 1, 2), Set.of(3, 4, 5)), halves);
      consumeExactlyOnce(topic, a, b);
      a.commit();
      b.commit();
      assertCommittedToEnd(group, topic);
      ConsumerGroupDescription d = describe(group);
      assertEquals(GroupState.STABLE, d.groupState());
      assertEquals("range", d.partitionAssignor());
      assertEquals(2, d.members().size());
      Set<Set<Integer>> described = new HashSet<>();
      for (MemberDescription m : d.members()) {
        described.add(sorted(m.assignment().topicPartitions()));
      }
      assertEquals(halves, described);
    }
    assertEquals(GroupState.EMPTY, describe(group).groupState());
  }

  @Tag("quick")
  @Test
  void cooperativeStickyMovesOnlyWhatItMust() throws Exception {
    String topic = Shoal.unique("java-coop");
    String group = Shoal.unique("g-coop");
    Shoal.createTopic(topic, PARTITIONS);
    Properties props = groupProps(group, CooperativeStickyAssignor.class.getName());
    try (Member a = new Member("a", props, topic)) {
      Shoal.waitUntil("a to own every partition", () -> a.assignment.size() == PARTITIONS);
      try (Member b = new Member("b", props, topic)) {
        waitForSplit(a, b);
        assertEquals(3, a.assignment.size());
        assertEquals(3, b.assignment.size());
        // Incremental: a gave up exactly what b got and never lost or gave up anything else.
        List<String> want = new ArrayList<>();
        want.add("assigned " + sorted(Shoal.partitionsOf(topic, PARTITIONS)));
        want.add("revoked " + sorted(b.assignment));
        List<String> events = new ArrayList<>(a.events);
        events.removeIf(e -> e.equals("assigned []") || e.equals("revoked []"));
        assertEquals(want, events);
        consumeExactlyOnce(topic, a, b);
        a.commit();
        b.commit();
        assertCommittedToEnd(group, topic);
        ConsumerGroupDescription d = describe(group);
        assertEquals(GroupState.STABLE, d.groupState());
        assertEquals("cooperative-sticky", d.partitionAssignor());
      }
    }
  }

  @Tag("quick")
  @Test
  void staticMemberRestartGetsItsPartitionsBackWithoutRebalance() throws Exception {
    String topic = Shoal.unique("java-static");
    String group = Shoal.unique("g-static");
    Shoal.createTopic(topic, PARTITIONS);
    Properties base = groupProps(group, RangeAssignor.class.getName());
    base.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "45000");
    Properties propsA = (Properties) base.clone();
    propsA.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-a");
    Properties propsB = (Properties) base.clone();
    propsB.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-b");
    try (Member a = new Member("a", propsA, topic)) {
      Set<TopicPartition> ofB;
      int generation;
      List<String> eventsOfA;
      try (Member b = new Member("b", propsB, topic)) {
        waitForSplit(a, b);
        ofB = Set.copyOf(b.assignment);
        generation = b.generation.get();
        eventsOfA = List.copyOf(a.events);
      }
      // A static member's close does not leave the group: its partitions wait for it.
      ConsumerGroupDescription away = describe(group);
      assertEquals(2, away.members().size());
      try (Member b2 = new Member("b2", propsB, topic)) {
        Shoal.waitUntil("b2 to get its partitions", () -> {
          b2.checkAlive();
          return !b2.assignment.isEmpty() && b2.generation.get() > 0;
        });
        assertEquals(ofB, b2.assignment);
        assertEquals(generation, b2.generation.get());
        Thread.sleep(500);
        assertEquals(eventsOfA, a.events, "a saw a rebalance");
        assertEquals(generation, a.generation.get());
        consumeExactlyOnce(topic, a, b2);
        ConsumerGroupDescription d = describe(group);
        assertEquals(GroupState.STABLE, d.groupState());
        Set<String> instances = new HashSet<>();
        for (MemberDescription m : d.members()) {
          instances.add(m.groupInstanceId().orElse("none"));
        }
        assertEquals(Set.of("instance-a", "instance-b"), instances);
      }
    }
  }

  @Test
  void manualCommitIsWhereTheNextMemberStarts() throws Exception {
    String topic = Shoal.unique("java-manual");
    String group = Shoal.unique("g-manual");
    Shoal.createTopic(topic, PARTITIONS);
    produce(topic);
    TopicPartition tp0 = new TopicPartition(topic, 0);
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Shoal.consumerProps(group))) {
      c.subscribe(List.of(topic));
      Map<TopicPartition, Long> end = new HashMap<>();
      Shoal.partitionsOf(topic, PARTITIONS).forEach(tp -> end.put(tp, (long) PER_PARTITION));
      Shoal.waitUntil("the assignment", () -> !c.poll(Duration.ofMillis(100)).isEmpty() || c.assignment().size() == PARTITIONS);
      c.seekToBeginning(c.assignment());
      List<ConsumerRecord<String, String>> got = Shoal.readUpTo(c, end);
      assertEquals(PARTITIONS * PER_PARTITION, got.size());
      Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
      for (TopicPartition tp : Shoal.partitionsOf(topic, PARTITIONS)) {
        commit.put(tp, new OffsetAndMetadata(10L * tp.partition() + 5, "meta-" + tp.partition()));
      }
      c.commitSync(commit, Shoal.WAIT);
      Map<TopicPartition, OffsetAndMetadata> back = c.committed(commit.keySet(), Shoal.WAIT);
      assertEquals(commit, back);
    }
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Shoal.consumerProps(group))) {
      c.subscribe(List.of(topic));
      Map<Integer, Long> first = new HashMap<>();
      Shoal.waitUntil("a record from every partition", () -> {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
          first.putIfAbsent(r.partition(), r.offset());
        }
        return first.size() == PARTITIONS;
      });
      for (int p = 0; p < PARTITIONS; p++) {
        assertEquals(10L * p + 5, first.get(p), "first offset read from partition " + p);
      }
      assertEquals(5L, c.committed(Set.of(tp0)).get(tp0).offset());
    }
  }

  @Test
  void autoCommitCommitsWhatWasRead() throws Exception {
    String topic = Shoal.unique("java-auto");
    String group = Shoal.unique("g-auto");
    Shoal.createTopic(topic, PARTITIONS);
    produce(topic);
    Properties props = Shoal.consumerProps(group);
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true");
    props.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "200");
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
      c.subscribe(List.of(topic));
      AtomicInteger read = new AtomicInteger();
      Shoal.waitUntil("everything read", () -> {
        read.addAndGet(c.poll(Duration.ofMillis(100)).count());
        return read.get() >= PARTITIONS * PER_PARTITION;
      });
      assertEquals(PARTITIONS * PER_PARTITION, read.get());
      Set<TopicPartition> all = Set.copyOf(Shoal.partitionsOf(topic, PARTITIONS));
      Shoal.waitUntil("the auto commit of every position", () -> {
        c.poll(Duration.ofMillis(100));
        Map<TopicPartition, OffsetAndMetadata> got = c.committed(all, Shoal.WAIT);
        return got.values().stream().allMatch(om -> om != null && om.offset() == PER_PARTITION);
      });
    }
    assertCommittedToEnd(group, topic);
  }

  @Tag("quick")
  @Test
  void seekByOffsetAndByTime() throws Exception {
    String topic = Shoal.unique("java-seek");
    Shoal.createTopic(topic, PARTITIONS);
    produce(topic);
    TopicPartition tp = new TopicPartition(topic, 4);
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Shoal.consumerProps(null))) {
      c.assign(List.of(tp));
      c.seek(tp, 37);
      ConsumerRecord<String, String> r = firstRecord(c);
      assertEquals(37, r.offset());
      assertEquals("4-37", r.value());
      assertEquals(BASE_TS + 370, r.timestamp());

      // Record i has timestamp BASE_TS + 10 i: between two, the later one is found.
      Map<TopicPartition, OffsetAndTimestamp> found =
          c.offsetsForTimes(Map.of(tp, BASE_TS + 605), Shoal.WAIT);
      assertFound(61, BASE_TS + 610, found.get(tp));
      found = c.offsetsForTimes(Map.of(tp, BASE_TS + 600), Shoal.WAIT);
      assertFound(60, BASE_TS + 600, found.get(tp));
      found = c.offsetsForTimes(Map.of(tp, 0L), Shoal.WAIT);
      assertFound(0, BASE_TS, found.get(tp));
      found = c.offsetsForTimes(Map.of(tp, BASE_TS + 10L * PER_PARTITION), Shoal.WAIT);
      assertNull(found.get(tp), "no record at or after the last timestamp + 10");

      c.seek(tp, c.offsetsForTimes(Map.of(tp, BASE_TS + 605), Shoal.WAIT).get(tp).offset());
      r = firstRecord(c);
      assertEquals(61, r.offset());
      assertEquals("4-61", r.value());

      c.seekToEnd(List.of(tp));
      assertEquals(PER_PARTITION, c.position(tp, Shoal.WAIT));
      c.seekToBeginning(List.of(tp));
      assertEquals(0, c.position(tp, Shoal.WAIT));
    }
  }

  private static void assertFound(long offset, long timestamp, OffsetAndTimestamp found) {
    assertEquals(offset, found.offset(), "offset of " + found);
    assertEquals(timestamp, found.timestamp(), "timestamp of " + found);
  }

  private static ConsumerRecord<String, String> firstRecord(KafkaConsumer<String, String> c)
      throws InterruptedException {
    List<ConsumerRecord<String, String>> got = new ArrayList<>();
    Shoal.waitUntil("a record", () -> {
      c.poll(Duration.ofMillis(100)).forEach(got::add);
      return !got.isEmpty();
    });
    return got.get(0);
  }
}

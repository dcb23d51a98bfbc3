package dev.shoal.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The AdminClient calls an operator makes: topics, the cluster, offsets, configs and consumer
 * groups, and DeleteRecords.
 */
class AdminTest {
  private static final long BASE_TS = 1_720_000_000_000L;

  private static <T> T get(KafkaFuture<T> future) throws Exception {
    return future.get(Shoal.WAIT.toSeconds(), TimeUnit.SECONDS);
  }

  /** The cause of a failed admin future, which is what the caller sees as the error. */
  private static Throwable failure(KafkaFuture<?> future) {
    ExecutionException e =
        assertThrows(
            ExecutionException.class,
            () -> future.get(Shoal.WAIT.toSeconds(), TimeUnit.SECONDS));
    return e.getCause();
  }

  private static Set<String> topicNames(Admin admin) throws Exception {
    return get(admin.listTopics().names());
  }

  @Tag("quick")
  @Test
  void topicLifecycle() throws Exception {
    String topic = Shoal.unique("admin-topic");
    try (Admin admin = Shoal.admin()) {
      get(admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all());
      Throwable dup =
          failure(admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all());
      assertInstanceOf(TopicExistsException.class, dup, () -> "duplicate create: " + dup);

      assertTrue(topicNames(admin).contains(topic), "listTopics misses " + topic);
      TopicDescription d = get(admin.describeTopics(List.of(topic)).topicNameValues().get(topic));
      assertEquals(topic, d.name());
      assertFalse(d.isInternal());
      assertNotNull(d.topicId());
      assertEquals(List.of(0, 1, 2), partitionIds(d));
      for (TopicPartitionInfo p : d.partitions()) {
        assertNotNull(p.leader(), () -> "no leader for " + p);
        assertFalse(p.leader().isEmpty(), () -> "empty leader for " + p);
        assertEquals(List.of(p.leader()), p.replicas());
        assertEquals(List.of(p.leader()), p.isr());
      }

      get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all());
      Shoal.waitUntil(
          "5 partitions in describeTopics",
          () -> {
            try {
              TopicDescription now =
                  get(admin.describeTopics(List.of(topic)).topicNameValues().get(topic));
              return partitionIds(now).equals(List.of(0, 1, 2, 3, 4));
            } catch (Exception e) {
              throw new AssertionError(e);
            }
          });
      // A new partition takes records like the old ones.
      try (KafkaProducer<String, String> producer = new KafkaProducer<>(Shoal.producerProps())) {
        RecordMetadata md = producer.send(new ProducerRecord<>(topic, 4, "k", "v")).get();
        assertEquals(4, md.partition());
        assertEquals(0, md.offset());
      }

      get(admin.deleteTopics(List.of(topic)).all());
      Shoal.waitUntil(
          topic + " gone from listTopics",
          () -> {
            try {
              return !topicNames(admin).contains(topic);
            } catch (Exception e) {
              throw new AssertionError(e);
            }
          });
      Throwable gone = failure(admin.describeTopics(List.of(topic)).allTopicNames());
      assertInstanceOf(UnknownTopicOrPartitionException.class, gone, () -> "describe: " + gone);
    }
  }

  private static List<Integer> partitionIds(TopicDescription d) {
    return d.partitions().stream().map(TopicPartitionInfo::partition).sorted().toList();
  }

  @Tag("quick")
  @Test
  void describeClusterListsEveryAgentAndAController() throws Exception {
    Set<Integer> expectedPorts = new HashSet<>();
    for (String address : Set.of(Shoal.bootstrap(), Shoal.bootstrap2())) {
      expectedPorts.add(Integer.parseInt(address.substring(address.lastIndexOf(':') + 1)));
    }
    for (String bootstrap : Set.of(Shoal.bootstrap(), Shoal.bootstrap2())) {
      try (Admin admin = Shoal.admin(bootstrap)) {
        DescribeClusterResult cluster = admin.describeCluster();
        Collection<Node> nodes = get(cluster.nodes());
        Set<Integer> ports = nodes.stream().map(Node::port).collect(Collectors.toSet());
        assertEquals(expectedPorts, ports, () -> "nodes seen through " + bootstrap + ": " + nodes);
        assertEquals(nodes.size(), nodes.stream().map(Node::id).distinct().count(), "node ids");
        Node controller = get(cluster.controller());
        assertNotNull(controller);
        assertTrue(nodes.contains(controller), () -> "controller " + controller + " not a node");
        String clusterId = get(cluster.clusterId());
        assertNotNull(clusterId);
        assertFalse(clusterId.isBlank());
      }
    }
  }

  @Tag("quick")
  @Test
  void listOffsetsEarliestLatestByTimestampAndMaxTimestamp() throws Exception {
    String topic = Shoal.unique("admin-offsets");
    Shoal.createTopic(topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    // Timestamps rise by a second per record, except offset 6, the largest: the max-timestamp
    // answer must be that record and not the last one.
    int count = 10;
    long maxTs = BASE_TS + 100_000;
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Shoal.producerProps())) {
      for (int i = 0; i < count; i++) {
        long ts = i == 6 ? maxTs : BASE_TS + i * 1_000L;
        producer.send(new ProducerRecord<>(topic, 0, ts, "k" + i, "v" + i)).get();
      }
    }
    try (Admin admin = Shoal.admin()) {
      assertEquals(0, offset(admin, tp, OffsetSpec.earliest()).offset());
      assertEquals(count, offset(admin, tp, OffsetSpec.latest()).offset());
      ListOffsetsResultInfo at3 = offset(admin, tp, OffsetSpec.forTimestamp(BASE_TS + 3_000));
      assertEquals(3, at3.offset());
      assertEquals(BASE_TS + 3_000, at3.timestamp());
      // Between two timestamps: the first record at or after it.
      ListOffsetsResultInfo after = offset(admin, tp, OffsetSpec.forTimestamp(BASE_TS + 7_500));
      assertEquals(6, after.offset(), () -> "first record at or after +7.5 s: " + after);
      assertEquals(-1, offset(admin, tp, OffsetSpec.forTimestamp(maxTs + 1)).offset());
      ListOffsetsResultInfo max = offset(admin, tp, OffsetSpec.maxTimestamp());
      assertEquals(6, max.offset());
      assertEquals(maxTs, max.timestamp());
    }
  }

  @Test
  void deleteRecordsMovesTheLogStart() throws Exception {
    String topic = Shoal.unique("admin-delete-records");
    Shoal.createTopic(topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Shoal.producerProps())) {
      for (int i = 0; i < 10; i++) {
        producer.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)).get();
      }
    }
    try (Admin admin = Shoal.admin()) {
      DeletedRecords deleted =
          get(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks()
              .get(tp));
      assertEquals(4, deleted.lowWatermark());
      assertEquals(4, offset(admin, tp, OffsetSpec.earliest()).offset());
      // Beyond the high watermark: Kafka's OffsetOutOfRangeException, nothing moves.
      assertInstanceOf(
          OffsetOutOfRangeException.class,
          failure(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(11)))
              .lowWatermarks().get(tp)));
      assertEquals(4, offset(admin, tp, OffsetSpec.earliest()).offset());
    }
  }

  private static ListOffsetsResultInfo offset(Admin admin, TopicPartition tp, OffsetSpec spec)
      throws Exception {
    return get(admin.listOffsets(Map.of(tp, spec)).partitionResult(tp));
  }

  @Tag("quick")
  @Test
  void describeAndIncrementallyAlterTopicConfigs() throws Exception {
    String topic = Shoal.unique("admin-configs");
    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    try (Admin admin = Shoal.admin()) {
      NewTopic nt = new NewTopic(topic, 1, (short) 1).configs(Map.of("retention.ms", "3600000"));
      get(admin.createTopics(List.of(nt)).all());

      Config config = describe(admin, resource);
      ConfigEntry retention = config.get("retention.ms");
      assertEquals("3600000", retention.value());
      assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source());
      assertFalse(retention.isDefault());
      assertFalse(retention.synonyms().isEmpty(), "no synonyms for retention.ms");
      ConfigEntry.ConfigSynonym first = retention.synonyms().get(0);
      assertEquals("retention.ms", first.name());
      assertEquals("3600000", first.value());
      assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, first.source());
      // The fallback under the topic's value: a default, never the topic's own source again.
      assertTrue(
          retention.synonyms().stream()
              .skip(1)
              .allMatch(s -> s.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG),
          () -> "synonyms " + retention.synonyms());
      ConfigEntry cleanup = config.get("cleanup.policy");
      assertNotNull(cleanup, "cleanup.policy not described");
      assertEquals("delete", cleanup.value());
      assertNotEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cleanup.source());
      assertTrue(cleanup.isDefault());
      // As Kafka 4.4 lists it: log.retention.ms has no default of its own (log.retention.hours
      // holds it), so only the topic's value is a synonym; the default is Kafka's 7 days.
      assertEquals(1, retention.synonyms().size(), () -> "synonyms " + retention.synonyms());
      String defaultRetention = "604800000";

      alter(
          admin,
          resource,
          new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
          new AlterConfigOp(
              new ConfigEntry("max.message.bytes", "2000000"), AlterConfigOp.OpType.SET));
      config = describe(admin, resource);
      assertEquals("7200000", config.get("retention.ms").value());
      assertEquals("2000000", config.get("max.message.bytes").value());
      assertEquals(
          ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, config.get("max.message.bytes").source());
      // Under an override, the broker key's default follows it (message.max.bytes has one).
      List<ConfigEntry.ConfigSynonym> maxBytes = config.get("max.message.bytes").synonyms();
      assertEquals(2, maxBytes.size(), () -> "synonyms " + maxBytes);
      assertEquals("message.max.bytes", maxBytes.get(1).name());
      assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, maxBytes.get(1).source());

      alter(
          admin,
          resource,
          new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE));
      config = describe(admin, resource);
      ConfigEntry reverted = config.get("retention.ms");
      assertEquals(defaultRetention, reverted.value());
      assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, reverted.source());
      assertEquals("2000000", config.get("max.message.bytes").value(), "the other key stays");

      Throwable bad =
          failure(
              admin
                  .incrementalAlterConfigs(
                      Map.of(
                          resource,
                          List.of(
                              new AlterConfigOp(
                                  new ConfigEntry("retention.ms", "not-a-number"),
                                  AlterConfigOp.OpType.SET))))
                  .all());
      assertInstanceOf(InvalidConfigurationException.class, bad, () -> "invalid value: " + bad);
      // A refused alter changes nothing.
      assertEquals(defaultRetention, describe(admin, resource).get("retention.ms").value());
    }
  }

  private static Config describe(Admin admin, ConfigResource resource) throws Exception {
    DescribeConfigsOptions options = new DescribeConfigsOptions().includeSynonyms(true);
    return get(admin.describeConfigs(List.of(resource), options).values().get(resource));
  }

  private static void alter(Admin admin, ConfigResource resource, AlterConfigOp... ops)
      throws Exception {
    get(admin.incrementalAlterConfigs(Map.of(resource, List.of(ops))).all());
  }

  @Tag("quick")
  @Test
  void describeAndDeleteConsumerGroups() throws Exception {
    String topic = Shoal.unique("admin-groups");
    String group = Shoal.unique("admin-group");
    int partitions = 3;
    Shoal.createTopic(topic, partitions);
    try (Admin admin = Shoal.admin();
        KafkaConsumer<String, String> consumer =
            new KafkaConsumer<>(Shoal.consumerProps(group))) {
      consumer.subscribe(List.of(topic));
      long deadline = System.nanoTime() + Shoal.WAIT.toNanos();
      while (consumer.assignment().size() < partitions) {
        assertTrue(System.nanoTime() < deadline, "no assignment: " + consumer.assignment());
        consumer.poll(Duration.ofMillis(100));
      }

      Collection<GroupListing> listed =
          get(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all());
      GroupListing listing =
          listed.stream().filter(g -> g.groupId().equals(group)).findFirst().orElse(null);
      assertNotNull(listing, () -> group + " not in " + listed);
      assertEquals(GroupState.STABLE, listing.groupState().orElse(null));
      assertFalse(listing.isSimpleConsumerGroup());
      assertEquals(GroupState.STABLE, legacyListing(admin, group));

      ConsumerGroupDescription d =
          get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
      assertEquals(GroupState.STABLE, d.groupState());
      assertFalse(d.isSimpleConsumerGroup());
      assertFalse(d.partitionAssignor().isEmpty());
      assertNotNull(d.coordinator());
      assertEquals(1, d.members().size(), () -> "members " + d.members());
      MemberDescription member = d.members().iterator().next();
      assertFalse(member.consumerId().isEmpty());
      assertEquals(
          new HashSet<>(Shoal.partitionsOf(topic, partitions)),
          member.assignment().topicPartitions());

      Throwable busy = failure(admin.deleteConsumerGroups(List.of(group)).all());
      assertInstanceOf(GroupNotEmptyException.class, busy, () -> "delete of a live group: " + busy);

      consumer.commitSync(
          Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(0)), Shoal.WAIT);
      consumer.close(Duration.ofSeconds(30));

      Shoal.waitUntil(
          group + " to be empty",
          () -> {
            try {
              return get(admin.describeConsumerGroups(List.of(group)).describedGroups().get(group))
                      .groupState()
                  == GroupState.EMPTY;
            } catch (Exception e) {
              throw new AssertionError(e);
            }
          });
      get(admin.deleteConsumerGroups(List.of(group)).all());
      Collection<GroupListing> after = get(admin.listGroups().all());
      assertTrue(
          after.stream().noneMatch(g -> g.groupId().equals(group)),
          () -> group + " still listed: " + after);
      assertTrue(
          get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()).isEmpty(),
          "a deleted group keeps no offsets");
    }
  }

  /**
   * The group's state through listConsumerGroups, deprecated in 4.x for listGroups but what
   * tools built on 3.x clients still call.
   */
  @SuppressWarnings("deprecation")
  private static GroupState legacyListing(Admin admin, String group) throws Exception {
    Collection<ConsumerGroupListing> all = get(admin.listConsumerGroups().all());
    ConsumerGroupListing listing =
        all.stream().filter(g -> g.groupId().equals(group)).findFirst().orElse(null);
    assertNotNull(listing, () -> group + " not in listConsumerGroups: " + all);
    return listing.groupState().orElse(null);
  }

  @Test
  void listAlterAndDeleteConsumerGroupOffsets() throws Exception {
    String topic = Shoal.unique("admin-group-offsets");
    String group = Shoal.unique("admin-offsets-group");
    int partitions = 3;
    Shoal.createTopic(topic, partitions);
    List<TopicPartition> tps = Shoal.partitionsOf(topic, partitions);
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Shoal.producerProps())) {
      for (TopicPartition tp : tps) {
        for (int i = 0; i < 20; i++) {
          producer.send(new ProducerRecord<>(topic, tp.partition(), "k" + i, "v" + i)).get();
        }
      }
    }
    try (Admin admin = Shoal.admin()) {
      // An operator's reset of a group that has no members yet (kafka-consumer-groups
      // --reset-offsets does this).
      Map<TopicPartition, OffsetAndMetadata> set = new HashMap<>();
      set.put(tps.get(0), new OffsetAndMetadata(5, "reset-0"));
      set.put(tps.get(1), new OffsetAndMetadata(10));
      set.put(tps.get(2), new OffsetAndMetadata(20));
      get(admin.alterConsumerGroupOffsets(group, set).all());
      Map<TopicPartition, OffsetAndMetadata> listed = listOffsets(admin, group);
      assertEquals(3, listed.size(), () -> "offsets " + listed);
      assertEquals(5, listed.get(tps.get(0)).offset());
      assertEquals("reset-0", listed.get(tps.get(0)).metadata());
      assertEquals(10, listed.get(tps.get(1)).offset());
      assertEquals(20, listed.get(tps.get(2)).offset());

      // A consumer of the group starts where the operator put it.
      try (KafkaConsumer<String, String> consumer =
          new KafkaConsumer<>(Shoal.consumerProps(group))) {
        consumer.subscribe(List.of(topic));
        Map<Integer, Long> firstSeen = new HashMap<>();
        long deadline = System.nanoTime() + Shoal.WAIT.toNanos();
        while (firstSeen.size() < 2) {
          assertTrue(System.nanoTime() < deadline, "first offsets seen: " + firstSeen);
          consumer.poll(Duration.ofMillis(100))
              .forEach(r -> firstSeen.putIfAbsent(r.partition(), r.offset()));
        }
        assertEquals(Map.of(0, 5L, 1, 10L), firstSeen);
        consumer.commitSync(Map.of(tps.get(1), new OffsetAndMetadata(15)), Shoal.WAIT);
        assertEquals(15, listOffsets(admin, group).get(tps.get(1)).offset());
      }

      get(admin.deleteConsumerGroupOffsets(group, Set.of(tps.get(0))).all());
      Map<TopicPartition, OffsetAndMetadata> left = listOffsets(admin, group);
      assertEquals(Set.of(tps.get(1), tps.get(2)), left.keySet(), () -> "offsets " + left);
      assertEquals(15, left.get(tps.get(1)).offset());

      get(admin.deleteConsumerGroups(List.of(group)).all());
      assertTrue(listOffsets(admin, group).isEmpty(), "a deleted group keeps no offsets");
    }
  }

  private static Map<TopicPartition, OffsetAndMetadata> listOffsets(Admin admin, String group)
      throws Exception {
    Map<TopicPartition, OffsetAndMetadata> raw =
        get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    // Partitions without a committed offset may come back as null entries.
    Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
    raw.forEach(
        (tp, om) -> {
          if (om != null) {
            out.put(tp, om);
          }
        });
    return out;
  }
}

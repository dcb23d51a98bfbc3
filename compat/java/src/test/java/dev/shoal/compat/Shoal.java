package dev.shoal.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The cluster under test, named by system properties, and helpers the tests share. */
final class Shoal {
  /** Upper bound of every wait: generous for a loaded 2-core machine, never a timing check. */
  static final Duration WAIT = Duration.ofSeconds(60);

  private Shoal() {}

  /** -Dshoal.bootstrap=HOST:PORT, an agent of the cluster under test. */
  static String bootstrap() {
    String value = System.getProperty("shoal.bootstrap", "");
    assertTrue(!value.isBlank(), "run with -Dshoal.bootstrap=HOST:PORT (a running Shoal agent)");
    return value;
  }

  /** -Dshoal.bootstrap2: a second agent of the same cluster; the first one when not given. */
  static String bootstrap2() {
    String value = System.getProperty("shoal.bootstrap2", "");
    return value.isBlank() ? bootstrap() : value;
  }

  static String unique(String prefix) {
    return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  static Admin admin() {
    return admin(bootstrap());
  }

  static Admin admin(String bootstrap) {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    return Admin.create(props);
  }

  static void createTopic(String topic, int partitions) throws Exception {
    try (Admin admin = admin()) {
      admin
          .createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
          .all()
          .get(WAIT.toSeconds(), TimeUnit.SECONDS);
    }
  }

  static Properties producerProps() {
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    return props;
  }

  static Properties consumerProps(String group) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    if (group != null) {
      props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
      props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    }
    return props;
  }

  static void waitUntil(String what, BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (!condition.getAsBoolean()) {
      assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
      Thread.sleep(50);
    }
  }

  /** Reads the assigned partitions from their position up to `end` (exclusive) offsets. */
  static List<ConsumerRecord<String, String>> readUpTo(
      KafkaConsumer<String, String> consumer, Map<TopicPartition, Long> end) {
    List<ConsumerRecord<String, String>> out = new ArrayList<>();
    long deadline = System.nanoTime() + WAIT.toNanos();
    Map<TopicPartition, Long> remaining = new HashMap<>(end);
    remaining.entrySet().removeIf(e -> consumer.position(e.getKey()) >= e.getValue());
    while (!remaining.isEmpty()) {
      assertTrue(System.nanoTime() < deadline, "timed out reading; still missing " + remaining);
      for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
        out.add(r);
      }
      remaining.entrySet().removeIf(e -> consumer.position(e.getKey()) >= e.getValue());
    }
    return out;
  }

  /** Every partition of `topic` from offset 0 to its end offset, through an assigned consumer. */
  static List<ConsumerRecord<String, String>> readAll(String topic, int partitions) {
    List<TopicPartition> tps = partitionsOf(topic, partitions);
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps(null))) {
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      Map<TopicPartition, Long> end = consumer.endOffsets(tps, WAIT);
      assertNotNull(end);
      assertEquals(partitions, end.size());
      return readUpTo(consumer, end);
    }
  }

  static List<TopicPartition> partitionsOf(String topic, int partitions) {
    List<TopicPartition> tps = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      tps.add(new TopicPartition(topic, p));
    }
    return tps;
  }
}

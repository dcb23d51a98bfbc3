#!/usr/bin/env bash
# $KAFKA_PATH/bin/kafka-topics.sh for librdkafka's tests (test_kafka_topics): Apache Kafka's own
# kafka-topics (the Maven artifact, tests/kafka_dist.py), with one change: a segment.bytes below
# Kafka 4's minimum of 1 MiB is raised to it. librdkafka 2.0.2's 0077 asks for 10000, which
# Kafka 4 refuses as Shoal does ("Value must be at least 1048576"); Shoal has no segments, so
# the value changes nothing there, and on Kafka 4 it is the smallest the test could ask for.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
PYTHON="${SHOAL_PYTHON:-$REPO/.venv/bin/python}"
args=()
for arg in "$@"; do
    if [[ "$arg" =~ ^segment\.bytes=([0-9]+)$ ]] && (( BASH_REMATCH[1] < 1048576 )); then
        arg="segment.bytes=1048576"
    fi
    args+=("$arg")
done
cd "$REPO"
exec "$PYTHON" -m tests.kafka_dist tool kafka-topics "${args[@]}"

#!/bin/sh
# Creates Eva's Kafka topics (the broker has auto.create.topics.enable=false). Idempotent (--if-not-exists), so it
# runs on every start: compose `kafka-init`, the kafka-topics component's Job. Runs in the apache/kafka image.
#   KAFKA_BOOTSTRAP            host:port of the broker (required)
#   TOPIC_REPLICATION_FACTOR   1 for a single node (default); 3 on a production cluster (min.insync.replicas 2)
# The list below mirrors eva_events.topics.ALL_TOPICS (name, partitions, max.message.bytes); a copy lives in
# deploy/k8s/components/kafka-topics/ and scripts/validate_manifests.py checks both against eva_events.
set -eu
BOOTSTRAP="${KAFKA_BOOTSTRAP:?KAFKA_BOOTSTRAP not set}"
RF="${TOPIC_REPLICATION_FACTOR:-1}"
MIN_ISR=1
if [ "$RF" -ge 3 ]; then MIN_ISR=2; fi
TOPICS=/opt/kafka/bin/kafka-topics.sh

attempt=0
until "$TOPICS" --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "kafka-init: no broker at $BOOTSTRAP after 120 s" >&2
    exit 1
  fi
  sleep 2
done

create() {  # name partitions max.message.bytes
  "$TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$1" --partitions "$2" \
    --replication-factor "$RF" --config "max.message.bytes=$3" --config "min.insync.replicas=$MIN_ISR"
}

create wa.webhooks.v1 6 4194304
create webhook.outcomes.v1 3 1048576
create messaging.events.v1 12 4194304
create conversation.events.v1 12 1048576
create tenant.events.v1 3 1048576
create audit.events.v1 3 1048576
create integration.events.v1 3 1048576
create wa.webhooks.v1.dlq 1 4194304
create webhook.outcomes.v1.dlq 1 1048576
create messaging.events.v1.dlq 1 4194304
create conversation.events.v1.dlq 1 1048576
create tenant.events.v1.dlq 1 1048576
create audit.events.v1.dlq 1 1048576
create integration.events.v1.dlq 1 1048576

"$TOPICS" --bootstrap-server "$BOOTSTRAP" --list

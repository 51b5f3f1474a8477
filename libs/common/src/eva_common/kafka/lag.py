"""Consumer lag per group and partition (`eva_kafka_consumer_lag`), from what the consumer already knows.

Every fetch response carries each partition's highwater (the offset the next produced record will get) and the
consumer knows its own position (the next record it hands over): their difference is the records still to handle.
Neither needs a broker round trip, so sampling costs a few dictionary look-ups, at most once per `interval_seconds`.
Partitions the consumer no longer owns (a rebalance moved them) lose their series, so a sum over a group counts each
partition once.
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError

from eva_common.metrics import KAFKA_CONSUMER_LAG


class LagGauge:
    def __init__(self, consumer: AIOKafkaConsumer, *, group_id: str, interval_seconds: float = 1.0) -> None:
        self._consumer = consumer
        self._group = group_id
        self._interval = interval_seconds
        self._shown: set[TopicPartition] = set()
        self._sampled_at = float("-inf")

    async def sample(self, *, force: bool = False) -> None:
        """Sets the lag of every assigned partition whose highwater is known (after its first fetch)."""
        now = time.monotonic()
        if not force and now - self._sampled_at < self._interval:
            return
        self._sampled_at = now
        assigned = set(self._consumer.assignment())
        for partition in self._shown - assigned:
            self._forget(partition)
        for partition in assigned:
            try:
                highwater = self._consumer.highwater(partition)
                if highwater is None:  # not fetched yet: its position may still be resolving (a broker round trip)
                    continue
                position = await self._consumer.position(partition)
            except (AssertionError, IllegalStateError):  # revoked meanwhile: the next sample forgets it
                continue
            KAFKA_CONSUMER_LAG.labels(self._group, partition.topic, str(partition.partition)).set(
                max(0, highwater - position))
            self._shown.add(partition)

    def clear(self) -> None:
        """Removes this consumer's series (it stopped: its partitions are someone else's now)."""
        for partition in list(self._shown):
            self._forget(partition)

    def _forget(self, partition: TopicPartition) -> None:
        self._shown.discard(partition)
        KAFKA_CONSUMER_LAG.remove(self._group, partition.topic, str(partition.partition))

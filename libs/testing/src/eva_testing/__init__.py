"""Test fixtures and helpers shared by every package's tests (real PostgreSQL, Redis and Kafka of the test profile)."""

"""EVA_MEDIA_STORE selects the media store; the S3 settings are checked at start (a bucket, both keys or neither),
empty values mean unset (AWS endpoint, default credential chain), and the secret never shows in errors."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from messaging_service.main import s3_media_store
from messaging_service.s3_media_store import MIB, S3Config, S3MediaStore
from messaging_service.settings import Settings
from pydantic import ValidationError

BASE = {"database_url": "postgresql+asyncpg://u:p@127.0.0.1:1/db", "service_client_secret": "a-real-client-secret",
        "kafka_bootstrap": "kafka:9092", "redis_url": "redis://127.0.0.1:1/0"}


def settings(**values: object) -> Settings:
    return Settings(**BASE, **values)  # type: ignore[arg-type]


def test_the_local_store_is_the_default() -> None:
    assert settings().media_store == "local"
    assert s3_media_store(settings()) is None


def test_the_s3_store_is_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "EVA_MEDIA_STORE": "s3", "EVA_MEDIA_S3_BUCKET": "eva-media", "EVA_MEDIA_S3_ENDPOINT_URL": "",
        "EVA_MEDIA_S3_REGION": "eu-west-1", "EVA_MEDIA_S3_ACCESS_KEY_ID": "", "EVA_MEDIA_S3_SECRET_ACCESS_KEY": "",
        "EVA_MEDIA_S3_PREFIX": "prod/", "EVA_MEDIA_S3_PATH_STYLE": "true", "EVA_MEDIA_SPOOL_DIR": "/var/tmp",
    }.items():
        monkeypatch.setenv(name, value)
    configured = settings()
    assert configured.media_s3_endpoint_url is None  # empty: AWS
    assert configured.media_s3_access_key_id is None and configured.media_s3_secret_access_key is None
    assert configured.media_spool_dir == Path("/var/tmp")
    store = s3_media_store(configured)
    assert isinstance(store, S3MediaStore) and store.bucket == "eva-media"
    assert store.object_key(f"tenant/{uuid.UUID(int=1)}") == f"prod/tenant/{uuid.UUID(int=1)}"


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ValidationError, match="EVA_MEDIA_S3_BUCKET is required"):
        settings(media_store="s3")


def test_s3_keys_come_in_pairs_and_the_secret_is_not_echoed() -> None:
    with pytest.raises(ValidationError, match="both") as error:
        settings(media_store="s3", media_s3_bucket="b", media_s3_secret_access_key="very-secret-value")
    assert "very-secret-value" not in str(error.value)
    configured = settings(media_store="s3", media_s3_bucket="b", media_s3_access_key_id="AKIA",
                          media_s3_secret_access_key="very-secret-value")
    assert "very-secret-value" not in repr(configured)


def test_parts_cannot_be_smaller_than_s3_allows() -> None:
    with pytest.raises(ValidationError):
        settings(media_s3_part_size_bytes=MIB)
    with pytest.raises(ValidationError):
        settings(media_store="unknown")


def test_an_s3_store_needs_a_bucket_and_valid_keys() -> None:
    with pytest.raises(ValueError):
        S3MediaStore(S3Config(bucket=""))
    store = S3MediaStore(S3Config(bucket="b", prefix=""))
    assert store.object_key("t/m") == "t/m"
    with pytest.raises(ValueError):
        store.object_key("t/../m")

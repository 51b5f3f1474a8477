"""Backup sets: one folder (or S3 prefix) per run, named by its UTC start time, holding one pg_dump archive per
database and a manifest.json written last (a set without a manifest is incomplete and never restored).

    <root>/20261207T031500Z/manifest.json
    <root>/20261207T031500Z/eva_auth.dump  eva_tenant.dump  ...

Stores: a local folder, or `s3://bucket/prefix` on any S3-compatible object store (botocore; endpoint, region,
credentials and addressing from EVA_BACKUP_S3_*, else botocore's own chain: AWS_* variables, instance roles).
Retention: a set is deleted when it is not among the `keep` newest or is older than `max_age_days`; the newest
complete set is never deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pg_client import EXIT_CHECKSUM, EXIT_NO_SET, BackupError

MANIFEST = "manifest.json"
FORMAT = 1
SET_NAME = re.compile(r"^\d{8}T\d{6}Z$")
NAME_FORMAT = "%Y%m%dT%H%M%SZ"
CHUNK = 1 << 20


def set_name(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(NAME_FORMAT)


def set_time(name: str) -> dt.datetime:
    return dt.datetime.strptime(name, NAME_FORMAT).replace(tzinfo=dt.UTC)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class DatabaseDump:
    name: str
    file: str
    bytes: int
    sha256: str
    alembic_version: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class Manifest:
    set: str
    started_at: str
    finished_at: str
    server_version: str
    pg_dump_version: str
    databases: list[DatabaseDump] = field(default_factory=list)
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data: dict[str, Any] = json.loads(text)
        if data.get("format") != FORMAT:
            raise BackupError(f"manifest format {data.get('format')!r} is not {FORMAT}")
        dumps = [DatabaseDump(**item) for item in data.pop("databases")]
        return cls(databases=dumps, **data)

    def database(self, name: str) -> DatabaseDump:
        for dump in self.databases:
            if dump.name == name:
                return dump
        raise BackupError(f"set {self.set} has no dump of {name} (it has {', '.join(self.names())})", EXIT_NO_SET)

    def names(self) -> list[str]:
        return [dump.name for dump in self.databases]


def verify(folder: Path, manifest: Manifest, names: Iterable[str]) -> None:
    """Every named dump is there with the manifest's size and sha256; else EXIT_CHECKSUM (nothing was touched)."""
    for name in names:
        dump = manifest.database(name)
        path = folder / dump.file
        if not path.is_file():
            raise BackupError(f"set {manifest.set}: {dump.file} is missing", EXIT_CHECKSUM)
        actual = sha256_of(path)
        if actual != dump.sha256 or path.stat().st_size != dump.bytes:
            raise BackupError(f"set {manifest.set}: {dump.file} has sha256 {actual} and {path.stat().st_size} bytes, "
                              f"the manifest says {dump.sha256} and {dump.bytes}: the copy is damaged",
                              EXIT_CHECKSUM)


class SetStore(Protocol):
    def describe(self) -> str: ...
    def sets(self) -> list[str]: ...  # complete sets, oldest first
    def put(self, name: str, folder: Path) -> None: ...  # the manifest last
    def fetch(self, name: str, into: Path, files: Sequence[str]) -> Path: ...  # a folder holding those files
    def manifest(self, name: str) -> Manifest: ...
    def delete(self, name: str) -> None: ...


def choose(store: SetStore, wanted: str) -> str:
    """`latest` or a set's name, among the store's complete sets; else EXIT_NO_SET."""
    names = store.sets()
    if wanted == "latest":
        if not names:
            raise BackupError(f"no backup set in {store.describe()}", EXIT_NO_SET)
        return names[-1]
    if wanted not in names:
        raise BackupError(f"no complete backup set {wanted} in {store.describe()} "
                          f"(there are: {', '.join(names) or 'none'})", EXIT_NO_SET)
    return wanted


def expired(names: Sequence[str], *, keep: int | None, max_age_days: float | None, now: dt.datetime) -> list[str]:
    """The sets retention deletes: beyond the `keep` newest, or older than `max_age_days`; never the newest."""
    ordered = sorted(names)
    doomed: set[str] = set()
    if keep is not None:
        doomed.update(ordered[:-keep] if keep > 0 else ordered)
    if max_age_days is not None:
        limit = now - dt.timedelta(days=max_age_days)
        doomed.update(name for name in ordered if set_time(name) < limit)
    doomed.discard(ordered[-1] if ordered else "")
    return [name for name in ordered if name in doomed]


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def sets(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if SET_NAME.match(p.name) and (p / MANIFEST).is_file())

    def partial(self, name: str) -> Path:
        """Where a run writes its set before it is complete (renamed to <root>/<name> at the end)."""
        return self.root / f".{name}.partial"

    def put(self, name: str, folder: Path) -> None:
        if folder != self.root / name:
            folder.rename(self.root / name)

    def fetch(self, name: str, into: Path, files: Sequence[str]) -> Path:
        return self.root / name

    def manifest(self, name: str) -> Manifest:
        return Manifest.from_json((self.root / name / MANIFEST).read_text())

    def delete(self, name: str) -> None:
        shutil.rmtree(self.root / name)

    def sweep_partials(self, current: str) -> None:
        """Folders of runs that died before they finished."""
        for path in self.root.glob(".*.partial"):
            if path.name != f".{current}.partial":
                shutil.rmtree(path, ignore_errors=True)


def _s3_client() -> Any:
    from botocore.config import Config
    from botocore.session import get_session

    env = os.environ
    path_style = env.get("EVA_BACKUP_S3_PATH_STYLE", "").lower() in ("1", "true", "yes")
    config = Config(s3={"addressing_style": "path" if path_style else "auto"}, retries={"max_attempts": 5},
                    connect_timeout=10, read_timeout=120)
    return get_session().create_client(
        "s3", endpoint_url=env.get("EVA_BACKUP_S3_ENDPOINT_URL") or None,
        region_name=env.get("EVA_BACKUP_S3_REGION") or None,
        aws_access_key_id=env.get("EVA_BACKUP_S3_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("EVA_BACKUP_S3_SECRET_ACCESS_KEY") or None, config=config)


class S3Store:
    """Sets under s3://bucket/prefix/<name>/; the manifest is uploaded last and marks the set complete."""

    def __init__(self, url: str, client: Any | None = None) -> None:
        if not url.startswith("s3://") or "/" not in url[5:] + "/" or not url[5:].split("/", 1)[0]:
            raise BackupError(f"not an S3 location: {url!r} (expected s3://bucket/prefix)")
        bucket, _, prefix = url[5:].partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = client if client is not None else _s3_client()

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str, file: str = "") -> str:
        return "/".join(part for part in (self.prefix, name, file) if part)

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except (BotoCoreError, ClientError) as error:
            raise BackupError(f"S3 {what} at {self.describe()} failed: {error}") from error

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("listing", "list_objects_v2", Bucket=self.bucket, Prefix=prefix, **token)
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def sets(self) -> list[str]:
        base = self.key("") + "/" if self.prefix else ""
        names = set()
        for key in self._keys(base):
            parts = key[len(base):].split("/")
            if len(parts) == 2 and parts[1] == MANIFEST and SET_NAME.match(parts[0]):
                names.add(parts[0])
        return sorted(names)

    def put(self, name: str, folder: Path) -> None:
        files = sorted(p for p in folder.iterdir() if p.name != MANIFEST) + [folder / MANIFEST]
        for path in files:
            with path.open("rb") as body:
                self._call(f"upload of {path.name}", "put_object", Bucket=self.bucket, Key=self.key(name, path.name),
                           Body=body)

    def manifest(self, name: str) -> Manifest:
        answer = self._call(f"download of {name}/{MANIFEST}", "get_object", Bucket=self.bucket,
                            Key=self.key(name, MANIFEST))
        return Manifest.from_json(answer["Body"].read().decode())

    def fetch(self, name: str, into: Path, files: Sequence[str]) -> Path:
        into.mkdir(parents=True, exist_ok=True)
        for file in files:
            answer = self._call(f"download of {name}/{file}", "get_object", Bucket=self.bucket,
                                Key=self.key(name, file))
            with (into / file).open("wb") as out:
                for chunk in answer["Body"].iter_chunks(CHUNK):
                    out.write(chunk)
        return into

    def delete(self, name: str) -> None:
        manifest = self.key(name, MANIFEST)  # the set stops counting as complete first
        keys = [manifest] + [key for key in self._keys(self.key(name) + "/") if key != manifest]
        for start in range(0, len(keys), 1000):
            objects = [{"Key": key} for key in keys[start:start + 1000]]
            self._call(f"deletion of {name}", "delete_objects", Bucket=self.bucket,
                       Delete={"Objects": objects, "Quiet": True})


def store_for(location: str) -> LocalStore | S3Store:
    return S3Store(location) if location.startswith("s3://") else LocalStore(Path(location))

#!/usr/bin/env python3
"""Build, and with a registry push, the image of every Eva deployable through the Docker Engine API.

    make images [REGISTRY=ghcr.io/org] [VERSION=1.2.3] [PUSH=1] [LATEST=1] [DEV=1] [IMAGES="auth gateway"]
    uv run python scripts/images.py [--registry R] [--version V] [--push] [--latest] [--dev] [--dry-run] [NAME ...]

Every row of deploy/deployables.toml (the dev-only simulator with --dev, or when named) is built from
deploy/Dockerfile with its row's build arguments (`scripts/deployables.py docker-args`), as `[<registry>/]eva/<name>:
<version>` (and `:latest` with --latest), with the OCI labels (title, description, version, revision, created, source,
base image; licenses when the project declares one). The version is --version, else `git describe --tags` (the tag
`v1.2.3` gives `1.2.3`, later commits `1.2.3-4-gabc1234`, no tag `0.0.0-gabc1234`), with `-dirty` when tracked files
differ from HEAD. --push pushes every tag once every image built (credentials: EVA_REGISTRY_USERNAME and
EVA_REGISTRY_PASSWORD, else the docker config of `docker login`); a dirty version is never pushed.

Exit codes: 0 done, 1 a build or a push failed, 2 no engine answers (one line says where it looked) or bad usage.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import deployables
import docker_engine

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "deploy/Dockerfile"
NAMESPACE = "eva"
DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
OCI = "org.opencontainers.image"


class UsageError(ValueError):
    """Arguments that cannot give a valid image reference."""


def emit(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def prefixed(name: str) -> docker_engine.Log:
    """A log that prefixes each line with the image's name (builds print a lot)."""
    return lambda line: emit(f"[{name}] {line}")


def git(root: Path, *args: str) -> str | None:
    """git's answer in root, stripped; None outside a checkout or on failure."""
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def version_from_describe(described: str) -> str:
    """`git describe --tags --always --dirty --match 'v[0-9]*'` as an image version (no leading v)."""
    if re.match(r"^v\d", described):
        return described[1:]
    return f"0.0.0-g{described}"  # no release tag yet: the abbreviated commit (and -dirty)


def resolve_version(explicit: str | None, root: Path = ROOT) -> str:
    if explicit:
        version = explicit[1:] if re.match(r"^v\d", explicit) else explicit
    else:
        described = git(root, "describe", "--tags", "--always", "--dirty", "--match", "v[0-9]*")
        if not described:
            raise UsageError("no --version given and git describe found no commit: pass --version (VERSION=)")
        version = version_from_describe(described)
    if not DOCKER_TAG.match(version):
        raise UsageError(f"version {version!r} is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")
    return version


def is_dirty(root: Path = ROOT) -> bool:
    """Tracked files differ from HEAD (untracked files are not in git describe's --dirty either)."""
    return git(root, "diff", "--quiet", "HEAD") is None and git(root, "rev-parse", "HEAD") is not None


def source_url(root: Path = ROOT, environment: Mapping[str, str] | None = None) -> str | None:
    """The repository's address: GitHub Actions' variables, else the https form of the origin remote."""
    env = os.environ if environment is None else environment
    if env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        return f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}"
    origin = git(root, "remote", "get-url", "origin")
    if not origin:
        return None
    scp = re.match(r"^[\w.-]+@([\w.-]+):(.+)$", origin)  # git@host:owner/repo.git
    url = f"https://{scp.group(1)}/{scp.group(2)}" if scp else re.sub(r"^\w+://[^@/]*@", "https://", origin)
    return url.removesuffix(".git") if url.startswith("https://") else None


def created_at(environment: Mapping[str, str] | None = None) -> str:
    """RFC 3339 UTC: SOURCE_DATE_EPOCH when set (reproducible builds), else now."""
    env = os.environ if environment is None else environment
    epoch = env.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _project(path: Path) -> Mapping[str, object]:
    if not path.is_file():
        return {}
    project = tomllib.loads(path.read_text()).get("project", {})
    return project if isinstance(project, dict) else {}


def licenses(root: Path = ROOT) -> str | None:
    """The SPDX expression the workspace declares ([project].license of the root pyproject), if any."""
    declared = _project(root / "pyproject.toml").get("license")
    if isinstance(declared, str):
        return declared
    if isinstance(declared, dict) and isinstance(declared.get("text"), str):
        return str(declared["text"])
    return None


def base_image(root: Path = ROOT) -> str | None:
    found = re.search(r"^FROM\s+(\S+)", (root / DOCKERFILE).read_text(), re.M)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class Build:
    """What is known about the build as a whole: the version and the facts every image's labels share."""

    version: str
    revision: str | None
    created: str
    source: str | None
    licenses: str | None
    base: str | None


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    repository: str  # [<registry>/]eva/<name>
    tags: tuple[str, ...]  # the tags of the repository (version, and latest)
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]

    @property
    def references(self) -> list[str]:
        return [f"{self.repository}:{tag}" for tag in self.tags]


def labels_for(item: deployables.Deployable, build: Build, root: Path = ROOT) -> dict[str, str]:
    description = _project(root / item.directory / "pyproject.toml").get("description")
    labels = {
        f"{OCI}.title": f"{NAMESPACE}/{item.name}",
        f"{OCI}.description": str(description) if description else f"Eva {item.name}",
        f"{OCI}.version": build.version,
        f"{OCI}.created": build.created,
        f"{OCI}.revision": build.revision,
        f"{OCI}.source": build.source,
        f"{OCI}.url": build.source,
        f"{OCI}.licenses": build.licenses,
        f"{OCI}.base.name": build.base,
    }
    return {key: value for key, value in labels.items() if value}


def plan(items: Sequence[deployables.Deployable], build: Build, *, registry: str | None, latest: bool,
         root: Path = ROOT) -> list[Image]:
    prefix = f"{registry.rstrip('/')}/" if registry else ""
    tags = (build.version, "latest") if latest else (build.version,)
    return [Image(name=item.name, repository=f"{prefix}{NAMESPACE}/{item.name}", tags=tags,
                  buildargs=item.docker_args(), labels=labels_for(item, build, root)) for item in items]


def select(names: Sequence[str], *, dev: bool, items: Sequence[deployables.Deployable] | None = None,
           ) -> list[deployables.Deployable]:
    """The named deployables (any, dev-only included), else every deployed one (and the dev-only ones with dev)."""
    rows = list(items if items is not None else deployables.load())
    if names:
        known = {row.name: row for row in rows}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise UsageError(f"no deployable {', '.join(unknown)} (known: {', '.join(known)})")
        return [known[name] for name in dict.fromkeys(names)]
    return [row for row in rows if dev or not row.dev_only]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="deployables to build (default: every deployed one)")
    parser.add_argument("--registry", help="e.g. ghcr.io/org: <registry>/eva/<name> (default: eva/<name>)")
    parser.add_argument("--version", help="the image tag (default: from git describe --tags)")
    parser.add_argument("--push", action="store_true", help="push every tag to the registry (needs --registry)")
    parser.add_argument("--latest", action="store_true", help="also tag (and push) :latest")
    parser.add_argument("--dev", action="store_true", help="also build the dev-only images (the simulator)")
    parser.add_argument("--allow-dirty", action="store_true", help="push even when tracked files are modified")
    parser.add_argument("--dry-run", action="store_true", help="print what would be built, build nothing")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, root: Path = ROOT) -> list[Image]:
    if args.registry and not REGISTRY.match(args.registry.rstrip("/")):
        raise UsageError(f"registry {args.registry!r} is not a registry host with an optional path (ghcr.io/org)")
    if args.push and not args.registry:
        raise UsageError("--push needs --registry (REGISTRY=): where should the images go?")
    version = resolve_version(args.version, root)
    if args.push and not args.allow_dirty and (version.endswith("-dirty") or is_dirty(root)):
        raise UsageError("tracked files differ from HEAD: commit them (or pass --allow-dirty) before pushing")
    build = Build(version=version, revision=git(root, "rev-parse", "HEAD"), created=created_at(),
                  source=source_url(root), licenses=licenses(root), base=base_image(root))
    return plan(select(args.names, dev=args.dev), build, registry=args.registry, latest=args.latest, root=root)


def build_all(client: Any, images: Sequence[Image], root: Path) -> list[str]:
    """Build every image (each one even when another failed); the names of those that failed."""
    failed: list[str] = []
    context = docker_engine.context_archive(root, DOCKERFILE)
    try:
        for image in images:
            started = time.monotonic()
            emit(f"images: building {', '.join(image.references)}")
            try:
                image_id = docker_engine.build(
                    client, context, dockerfile=DOCKERFILE, tags=image.references, buildargs=image.buildargs,
                    labels=image.labels, log=prefixed(image.name))
            except docker_engine.EngineError as error:
                emit(f"images: {image.name}: build failed: {error}")
                failed.append(image.name)
                continue
            emit(f"images: built {image.name} {image_id} in {time.monotonic() - started:.0f} s")
    finally:
        context.close()
    return failed


def push_all(client: Any, images: Sequence[Image]) -> list[str]:
    """Push every tag of every image; the references that failed."""
    failed: list[str] = []
    auth = docker_engine.registry_auth()
    for image in images:
        for tag in image.tags:
            try:
                digest = docker_engine.push(client, image.repository, tag, auth=auth, log=prefixed(image.name))
            except docker_engine.EngineError as error:
                emit(f"images: {image.name}: {error}")
                failed.append(f"{image.name}:{tag}")
                continue
            emit(f"images: pushed {image.repository}:{tag}" + (f" ({digest})" if digest else ""))
    return failed


def run(images: Sequence[Image], *, push: bool, root: Path = ROOT) -> int:
    """Build every image, then (push) push them all: a release never pushes some images of a failed build."""
    client = docker_engine.connect()
    emit(f"images: engine {docker_engine.engine_address()[0]} (API {client.api.api_version}); context {root}")
    failed = build_all(client, images, root)
    if failed and push:
        emit("images: nothing pushed, since not every image built")
    elif push:
        failed = push_all(client, images)
    if failed:
        emit(f"images: failed: {', '.join(failed)}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        images = prepare(args)
    except (UsageError, deployables.RegistryError) as error:
        emit(f"images: {error}")
        return 2
    if args.dry_run:
        for image in images:
            sys.stdout.write(f"{' '.join(image.references)}\n")
            for key, value in {**image.buildargs, **image.labels}.items():
                sys.stdout.write(f"  {key}={value}\n")
        return 0
    try:
        return run(images, push=args.push)
    except docker_engine.EngineUnavailable as error:
        emit(f"images: {error}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Offline validation of Eva's deployment files: the kustomize tree under deploy/k8s and the compose files under
deploy/compose. No cluster and no Docker engine are needed.

    uv run python scripts/validate_manifests.py [--root DIR] [--only k8s|compose|yaml|consistency] [--target REL]

What it does:
  * renders every kustomize target (each kustomization under deploy/k8s that is not a Component) with the real
    kustomize, pinned in scripts/tools.py; when it is missing it installs it once into .local/tools/ with
    `go install` from the Go module proxy ($EVA_KUSTOMIZE or --kustomize point at another binary);
  * validates every rendered object against the Kubernetes JSON schemas shipped by kubernetes-validate, strict
    (unknown fields are errors), for K8S_VERSION, and every custom resource (CloudNativePG, Strimzi,
    prometheus-operator) against its operator's published schema (scripts/crd_schemas.py);
  * checks the project's rules on the rendered objects (resources, probes, security context, images, Service port
    names, literal secrets, ...; `--list-rules` prints them);
  * interpolates the compose files with deploy/compose/.env.example and validates them with check-jsonschema's
    vendored compose-spec schema, then checks the compose rules;
  * runs yamllint (deploy/.yamllint.yaml) on every YAML file under deploy/;
  * checks that copies kept for kustomize (topics script, PostgreSQL provisioning) match their originals and
    eva_events.topics, and that the Strimzi KafkaTopics are what scripts/strimzi_topics.py writes from it;
  * reads every deployable from the registry deploy/deployables.toml (of --root) and checks that the one
    Dockerfile (deploy/Dockerfile) and compose's builds take their build arguments from it.

Exit status: 0 clean, 1 a check failed (each problem printed as `ERROR [rule] where: message`), 2 the validator
could not run (e.g. no kustomize and no Go toolchain to install it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crd_schemas  # noqa: E402  (scripts/crd_schemas.py: the operators' schemas for custom resources)
import deployables  # noqa: E402  (scripts/deployables.py: the registry, deploy/deployables.toml)
import edge_server  # noqa: E402  (scripts/edge_server.py: the compose edge's Caddy)
import tools  # noqa: E402  (scripts/tools.py: the pinned tools)

SCRIPT_ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.33.0"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True, slots=True)
class Deployable:
    """A registry row as the manifests see it: the container's ports."""

    name: str
    http_port: int
    grpc_port: int | None
    database: str | None
    directory: str
    public: bool = False
    dev_only: bool = False
    build_args: tuple[tuple[str, str], ...] = ()


# The rules read these three, made from the registry by use_registry (the one of --root, see main).
DEPLOYABLES: dict[str, Deployable] = {}
SERVICES: list[Deployable] = []
REQUIRED_CONFIG_KEYS: tuple[str, ...] = ()
DOCKERFILE = "deploy/Dockerfile"
EVA_UID = 1000
SHUTDOWN_GRACE_S = 5  # EVA_SHUTDOWN_GRACE_SECONDS default: the gRPC server's stop grace
# Third-party images allowed outside the Deployments (dev StatefulSets and one-shot Jobs), always with a pinned tag.
THIRD_PARTY_IMAGES = frozenset({"postgres", "redis", "apache/kafka"})
# Eva's images that are not deployables (no Deployment, no registry row), each with the Dockerfile it comes from;
# allowed in Jobs and CronJobs.
TOOL_IMAGES: dict[str, str] = {"backup": "deploy/backup/Dockerfile"}
# The only containers allowed a writable root filesystem, and why.
WRITABLE_ROOT_IMAGES: dict[str, str] = {
    "apache/kafka": "its entrypoint renders server.properties into /opt/kafka/config at start",
}
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"})
DEV_ONLY_ANNOTATION = "eva.io/dev-only"
META_GRAPH_URL = "https://graph.facebook.com"
SIMULATOR_URL = "http://simulator:3010"
# Env/config names that hold secrets (by suffix, so EVA_ACCESS_TOKEN_TTL_SECONDS is not one).
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRETS?|TOKENS?|KEYS?|CREDENTIALS?|SERVICE_CLIENTS|DATABASE_URL|REDIS_URL|DSN)$", re.I
)
CREDENTIAL_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:(?P<password>[^@\s/]+)@")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")

RULES: dict[str, str] = {
    "kustomize-build": "every kustomize target renders",
    "schema": f"every rendered object is valid for Kubernetes {K8S_VERSION} (kubernetes-validate, strict)",
    "kafka-wiring": "with a Strimzi Kafka rendered: (overlays) EVA_KAFKA_BOOTSTRAP is its bootstrap Service on a plain "
    "listener, every KafkaNodePool/KafkaTopic names a rendered Kafka, topics have at most as many replicas as "
    "brokers and min.insync.replicas below their replicas",
    "crd-schema": "every custom resource is valid against its operator's published schema (CloudNativePG, "
    "prometheus-operator CRDs; Strimzi's compiled validators), unknown fields refused unless the schema preserves "
    "them; a group with no schema only on crd_schemas.ALLOWED_WITHOUT_SCHEMA, with a reason",
    "resources": "every container and initContainer has cpu and memory requests and limits",
    "probes": "long-running containers have readiness and liveness probes; Eva deployables: startup probe "
    "(native grpc: for gRPC services), readiness httpGet /readyz and liveness httpGet /healthz on port http",
    "security-context": "non-root (uid 1000 for Eva images), RuntimeDefault seccomp, no privilege escalation, "
    "not privileged, capabilities drop ALL, read-only root filesystem, no host namespaces",
    "image": "a Deployment runs eva/<its name> of a known deployable; other workloads run Eva or allowed "
    "third-party images; tags pinned (never latest); the migrate initContainer runs the app's image",
    "service-ports": "a deployable's Service ports are named http/grpc and match the port table",
    "service-selector": "every Service selects the pods of a workload",
    "shape": "the Online Boutique shape: Deployment, Service and ServiceAccount share the name and `app:` label; "
    "container ports, EVA_* ports, envFrom ConfigMap, termination grace, migrate initContainer",
    "owner-credentials": "the migration (owner) database URL reaches only the migrate step",
    "literal-secret": "no secret value in manifests: secrets only through Secret references; Secret objects only "
    "in the dev overlay, annotated eva.io/dev-only",
    "secret-generator": "secretGenerator only in overlays/dev, each entry annotated eva.io/dev-only",
    "config-ref": "every referenced ConfigMap exists; in the dev overlay every referenced Secret key exists",
    "environment": "eva-config has the shared keys; dev: EVA_ENVIRONMENT=dev and the simulator; elsewhere: "
    "production, Meta's Graph API and no simulator",
    "completeness": "every deployable is in every target",
    "gateway-affinity": "the gateway Service sticks by ClientIP and its Ingress by cookie (Socket.io polling)",
    "ingress": "Ingresses route only to public deployables, by existing Service port names; ingest takes 4 MB",
    "network-policy": "with default deny, every deployable has its own allow-list policy",
    "autoscaling": "HPAs and PDBs target existing Deployments",
    "components": "every Component is used by a target",
    "compose-schema": "compose files are valid against check-jsonschema's vendored compose-spec",
    "compose-env": "every required variable of the compose files is listed in .env.example",
    "compose-literal-secret": "secret-like compose values are ${VAR:?...} interpolations, never literals",
    "compose-ports": "in compose.yml only the edge publishes ports (80, 443, 443/udp); "
    "the override publishes debugging ports on 127.0.0.1 only",
    "compose-edge": "the edge runs the pinned Caddy with edge/Caddyfile (valid, formatted, proxying to exactly the "
    "public deployables' container ports, and Grafana) and volumes for /data and /config; the public deployables "
    "sit on its network and believe X-Forwarded-For from its address only",
    "compose-health": "long-running compose services have healthchecks (Eva: /readyz), restart policies and "
    "resource limits",
    "compose-depends-on": "depends_on uses conditions on existing services; one-shots are awaited with "
    "service_completed_successfully",
    "compose-services": "every deployable is a compose service with its image, ports, database URLs, migrate step "
    "and hardening",
    "compose-dev": "the override adds the simulator and sets EVA_ENVIRONMENT=dev and the simulator's Graph URL",
    "redis-config": "Redis runs with maxmemory-policy noeviction and AOF",
    "topics": "the topic scripts create exactly eva_events.topics.ALL_TOPICS and are identical; the Strimzi "
    "KafkaTopics (components/strimzi-kafka/topics.yaml) are what scripts/strimzi_topics.py writes from it",
    "provision-sql": "the PostgreSQL provisioning copies are identical and cover every database and grant",
    "yamllint": "every YAML file under deploy/ passes yamllint",
    "registry": "deploy/deployables.toml is well-formed and matches the workspace (folders, packages, modules)",
    "dockerfile": f"one Dockerfile ({DOCKERFILE}) for every deployable: it declares the registry's build arguments, "
    "runs as uid 1000, and no deployable keeps a Dockerfile of its own",
    "compose-build": f"every image compose builds comes from {DOCKERFILE} with its registry row as build arguments",
}


def use_registry(rows: Sequence[deployables.Deployable]) -> None:
    """Point the rules at a registry's rows (container ports, public deployables, peers' gRPC targets)."""
    global REQUIRED_CONFIG_KEYS
    DEPLOYABLES.clear()
    for row in rows:
        DEPLOYABLES[row.name] = Deployable(
            row.name, row.http_port("container"), row.grpc_port("container"), row.database, row.directory,
            public=row.public, dev_only=row.dev_only, build_args=tuple(row.docker_args().items()),
        )
    SERVICES[:] = [d for d in DEPLOYABLES.values() if not d.dev_only]
    REQUIRED_CONFIG_KEYS = (
        "EVA_ENVIRONMENT", "EVA_KAFKA_BOOTSTRAP", *(row.grpc_target_env for row in rows if row.grpc),
        "EVA_WHATSAPP_GRAPH_URL", "EVA_FRONTEND_URL",
    )


use_registry(deployables.load())


# --------------------------------------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"ERROR [{self.rule}] {self.where}: {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, rule: str, where: str, message: str) -> None:
        if rule not in RULES:
            raise KeyError(f"unknown rule {rule}")
        self.findings.append(Finding(rule, where, message))

    def note(self, line: str) -> None:
        self.notes.append(line)


class ToolError(RuntimeError):
    """The validator cannot run (missing tool); exit status 2."""


def emit(line: str, *, error: bool = False) -> None:
    stream = sys.stderr if error else sys.stdout
    stream.write(line + "\n")
    stream.flush()


# --------------------------------------------------------------------------------------------- kustomize


def find_kustomize(explicit: str | None) -> Path:
    """--kustomize, $EVA_KUSTOMIZE, else the pinned copy under .local/tools (scripts/tools.py, installed once)."""
    if explicit:
        if not Path(explicit).is_file():
            raise ToolError(f"kustomize binary {explicit} does not exist")
        return Path(explicit)
    try:
        return tools.go_install(tools.KUSTOMIZE, SCRIPT_ROOT)
    except tools.ToolError as exc:
        raise ToolError(f"kustomize {tools.KUSTOMIZE.version}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Kustomization:
    path: Path  # the directory
    rel: str  # relative to deploy/k8s
    kind: str  # Kustomization | Component
    data: dict[str, Any]


def _kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def discover_kustomizations(k8s_root: Path) -> list[Kustomization]:
    found: list[Kustomization] = []
    for directory in sorted(p for p in k8s_root.rglob("*") if p.is_dir()) + [k8s_root]:
        file = _kustomization_file(directory)
        if file is None:
            continue
        data = yaml.safe_load(file.read_text()) or {}
        kind = str(data.get("kind", "Kustomization"))
        rel = directory.relative_to(k8s_root).as_posix() or "."
        found.append(Kustomization(directory, rel, kind, data))
    return sorted(found, key=lambda k: k.rel)


def render(kustomize: Path, target: Path) -> tuple[list[dict[str, Any]], str | None]:
    result = subprocess.run(
        [str(kustomize), "build", str(target)], capture_output=True, text=True, timeout=180, check=False
    )
    if result.returncode != 0:
        return [], result.stderr.strip() or f"kustomize exited {result.returncode}"
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if isinstance(doc, dict)]
    return docs, None


# --------------------------------------------------------------------------------------------- schemas


class KubeSchemas:
    """kubernetes-validate's strict schemas, one compiled validator per kind (its `validate` reloads the 1.4 MB
    definitions on every call and stops at the first error)."""

    def __init__(self, version: str) -> None:
        import jsonschema  # type: ignore[import-untyped]
        import referencing
        from kubernetes_validate import utils as kv  # type: ignore[import-untyped]

        self._jsonschema = jsonschema
        self._referencing = referencing
        self._kv = kv
        if kv.major_minor(version) not in [kv.major_minor(v) for v in kv.all_versions()]:
            raise ToolError(f"kubernetes-validate {kv.__version__} has no schemas for Kubernetes {version}")
        self.version = kv.major_minor(version)
        self._dir = f"v{[v for v in kv.all_versions() if kv.major_minor(v) == self.version][-1]}-local-strict"
        self._definitions: Any = None
        self._validators: dict[tuple[str, str], Any] = {}

    def has_schema(self, obj: Mapping[str, Any]) -> bool:
        key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if key not in self._validators:
            self._validators[key] = self._build(*key)
        return self._validators[key] is not None

    def errors(self, obj: Mapping[str, Any]) -> list[str]:
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        key = (api_version, kind)
        if key not in self._validators:
            self._validators[key] = self._build(api_version, kind)
        validator = self._validators[key]
        if validator is None:
            return [f"no schema for {kind} {api_version} in Kubernetes {self.version} (unknown kind or a CRD)"]
        messages = []
        for error in sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path]):
            path = ".".join(str(p) for p in error.absolute_path) or "(root)"
            messages.append(f"{path}: {error.message}")
        return messages

    def _build(self, api_version: str, kind: str) -> Any:
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        try:
            schema = self._kv.schema_contents(
                f"kubernetes-json-schema/{self._dir}/{kind.lower()}-{group_version}.json", self.version
            )
        except FileNotFoundError:
            return None
        if self._definitions is None:
            self._definitions = self._kv.schema_contents(
                f"kubernetes-json-schema/{self._dir}/_definitions.json", self.version
            )
        resource = self._referencing.Resource.from_contents(schema)
        definitions = self._referencing.Resource.from_contents(self._definitions)
        registry = definitions @ (resource @ self._referencing.Registry())
        return self._jsonschema.validators.Draft202012Validator(schema, registry=registry)


# --------------------------------------------------------------------------------------------- object helpers


def name_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", "?"))


def ident(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{name_of(obj)}"


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return dict(spec)
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") if isinstance(spec, dict) else None
    if isinstance(template, dict):
        return dict(template.get("spec") or {})
    return None


def pod_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return dict(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            yield kind, container


def image_parts(image: str) -> tuple[str, str | None]:
    """`registry.example.com:5000/eva/auth:1.2@sha256:..` -> ("eva/auth", "1.2"); registry host dropped."""
    ref = image.split("@", 1)[0]
    tag: str | None = None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    repo = "/".join(parts)
    if repo.startswith("library/"):
        repo = repo[len("library/") :]
    return repo, tag


def eva_deployable_of(repo: str) -> str | None:
    """eva/<name> -> name (also behind a registry path prefix such as ghcr.io/acme/eva/<name>)."""
    match = re.search(r"(?:^|/)eva/([a-z0-9-]+)$", repo)
    return match.group(1) if match else None


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")


def probe_http_path(probe: Mapping[str, Any] | None) -> tuple[str | None, Any]:
    http = (probe or {}).get("httpGet") or {}
    return http.get("path"), http.get("port")


# --------------------------------------------------------------------------------------------- k8s rules


@dataclass
class Target:
    rel: str
    objects: list[dict[str, Any]]

    @property
    def is_dev(self) -> bool:
        return self.rel == "overlays/dev" or self.rel.startswith("overlays/dev/")

    @property
    def is_overlay(self) -> bool:
        return self.rel.startswith("overlays/")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.of_kind(kind) if name_of(o) == name), None)


def check_target(
    target: Target,
    report: Report,
    schemas: KubeSchemas | None,
    crds: crd_schemas.CustomResourceSchemas | None = None,
) -> None:
    if schemas is not None:
        check_schemas(target, report, schemas, crds)
    for obj in target.objects:
        spec = pod_spec(obj)
        if spec is not None:
            check_workload(target, obj, spec, report)
    check_deployables(target, report)
    check_services(target, report)
    check_secrets(target, report)
    check_config(target, report)
    check_ingress(target, report)
    check_network_policies(target, report)
    check_autoscaling(target, report)
    check_kafka_wiring(target, report)


def check_schemas(
    target: Target, report: Report, schemas: KubeSchemas, crds: crd_schemas.CustomResourceSchemas | None
) -> None:
    """Kubernetes' own kinds against kubernetes-validate; the rest (custom resources) against their operators'."""
    where = f"deploy/k8s/{target.rel}"
    custom = [obj for obj in target.objects if not schemas.has_schema(obj)] if crds is not None else []
    for obj in target.objects:
        if not any(obj is other for other in custom):
            for message in schemas.errors(obj):
                report.error("schema", f"{where}: {ident(obj)}", message)
    if crds is None or not custom:
        return
    try:
        problems = crds.errors(custom)
    except crd_schemas.SchemaError as exc:
        raise ToolError(f"custom resource schemas: {exc}") from exc
    for obj, messages in zip(custom, problems, strict=True):
        for message in messages:
            report.error("crd-schema", f"{where}: {ident(obj)}", message)


def check_workload(target: Target, obj: dict[str, Any], spec: dict[str, Any], report: Report) -> None:
    where = f"deploy/k8s/{target.rel}: {ident(obj)}"
    kind = obj.get("kind")
    pod_sc = spec.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            report.error("security-context", where, f"{host} is on")
    long_running = kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
    for group, container in containers(spec):
        cname = f"{where} {group[:-1]} {container.get('name', '?')}"
        image = str(container.get("image", ""))
        repo, tag = image_parts(image)
        # resources
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            values = resources.get(section) or {}
            missing = [r for r in ("cpu", "memory") if r not in values]
            if missing:
                report.error("resources", cname, f"no {section}.{' / '.join(missing)}")
        # probes
        if long_running and group == "containers":
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    report.error("probes", cname, f"no {probe}")
        # security context
        sc = container.get("securityContext") or {}
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        run_as_user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if run_as_non_root is not True:
            report.error("security-context", cname, "runAsNonRoot is not true")
        if run_as_user in (None, 0):
            report.error("security-context", cname, "no non-zero runAsUser")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            report.error("security-context", cname, "seccompProfile is not RuntimeDefault")
        if sc.get("privileged") is True:
            report.error("security-context", cname, "privileged container")
        if sc.get("allowPrivilegeEscalation") is not False:
            report.error("security-context", cname, "allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            report.error("security-context", cname, "capabilities.drop does not contain ALL")
        if caps.get("add"):
            report.error("security-context", cname, f"capabilities.add {caps.get('add')}")
        if repo == "redis" and group == "containers":
            command = " ".join(str(part) for part in (container.get("command") or []) + (container.get("args") or []))
            if "--maxmemory-policy noeviction" not in command or "--appendonly yes" not in command:
                report.error(
                    "redis-config", cname, "redis-server needs --maxmemory-policy noeviction and --appendonly yes"
                )
        if sc.get("readOnlyRootFilesystem") is not True and repo not in WRITABLE_ROOT_IMAGES:
            report.error("security-context", cname, "readOnlyRootFilesystem is not true")
        deployable = eva_deployable_of(repo)
        if deployable is not None and run_as_user not in (None, 0, EVA_UID):
            report.error("security-context", cname, f"Eva images run as uid {EVA_UID}, not {run_as_user}")
        # images
        if not image:
            report.error("image", cname, "no image")
            continue
        if deployable is None and repo not in THIRD_PARTY_IMAGES:
            report.error(
                "image",
                cname,
                f"{image}: neither eva/<deployable> nor an allowed third-party image "
                f"({', '.join(sorted(THIRD_PARTY_IMAGES))})",
            )
        elif deployable is not None and deployable not in DEPLOYABLES and not (
                deployable in TOOL_IMAGES and kind in ("Job", "CronJob")):
            report.error("image", cname, f"{image}: no deployable named {deployable!r}")
        if tag == "latest" or (tag is None and "@" not in image and (deployable is None or target.is_overlay)):
            report.error("image", cname, f"{image}: pin a tag (not latest)")


def _env_value(container: Mapping[str, Any], name: str) -> Any:
    for item in container.get("env") or []:
        if item.get("name") == name:
            return item.get("value", item.get("valueFrom"))
    return None


def check_deployables(target: Target, report: Report) -> None:
    where = f"deploy/k8s/{target.rel}"
    deployments = {name_of(d): d for d in target.of_kind("Deployment")}
    for service in SERVICES:
        if service.name not in deployments:
            report.error("completeness", where, f"no Deployment for {service.name}")
    if "simulator" in deployments and not target.is_dev:
        report.error("environment", where, "the simulator is dev-only")
    if target.is_dev and "simulator" not in deployments:
        report.error("environment", where, "the dev overlay runs the simulator")
    for name, deployment in deployments.items():
        at = f"{where}: Deployment/{name}"
        svc = DEPLOYABLES.get(name)
        spec = pod_spec(deployment) or {}
        for group, container in containers(spec):
            repo, _ = image_parts(str(container.get("image", "")))
            if eva_deployable_of(repo) != name or svc is None:
                report.error(
                    "image",
                    f"{at} {group[:-1]} {container.get('name')}",
                    f"{container.get('image')}: a Deployment runs eva/<its own name> of a known deployable",
                )
        if svc is None:
            continue
        check_shape(target, deployment, svc, report)


def check_shape(target: Target, deployment: dict[str, Any], svc: Deployable, report: Report) -> None:
    at = f"deploy/k8s/{target.rel}: Deployment/{svc.name}"
    labels = (deployment.get("metadata") or {}).get("labels") or {}
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    apps = {labels.get("app"), selector.get("app"), pod_labels(deployment).get("app")}
    if apps != {svc.name}:
        report.error("shape", at, f"metadata, selector and pod template must carry app: {svc.name}")
    spec = pod_spec(deployment) or {}
    if spec.get("serviceAccountName") != svc.name:
        report.error("shape", at, f"serviceAccountName must be {svc.name}")
    if target.find("ServiceAccount", svc.name) is None:
        report.error("shape", at, f"no ServiceAccount {svc.name}")
    if target.find("Service", svc.name) is None:
        report.error("shape", at, f"no Service {svc.name}")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    main = list(spec.get("containers") or [])
    pre_stop = max(
        (int(((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)) for c in main),
        default=0,
    )
    if not isinstance(grace, int) or grace <= SHUTDOWN_GRACE_S + pre_stop:
        report.error(
            "shape",
            at,
            f"terminationGracePeriodSeconds {grace} must exceed the preStop sleep ({pre_stop} s)"
            f" + the gRPC stop grace ({SHUTDOWN_GRACE_S} s)",
        )
    if not main:
        return
    server = main[0]
    cname = f"{at} container {server.get('name')}"
    ports = {p.get("name"): p.get("containerPort") for p in server.get("ports") or []}
    expected = {"http": svc.http_port} | ({"grpc": svc.grpc_port} if svc.grpc_port else {})
    if ports != expected:
        report.error("shape", cname, f"container ports {ports} must be {expected}")
    if svc.name != "simulator":
        if str(_env_value(server, "EVA_HTTP_PORT")) != str(svc.http_port):
            report.error("shape", cname, f"EVA_HTTP_PORT must be {svc.http_port}")
        if svc.grpc_port and str(_env_value(server, "EVA_GRPC_PORT")) != str(svc.grpc_port):
            report.error("shape", cname, f"EVA_GRPC_PORT must be {svc.grpc_port}")
        for host in ("EVA_HTTP_HOST",) + (("EVA_GRPC_HOST",) if svc.grpc_port else ()):
            if _env_value(server, host) != "0.0.0.0":
                report.error("shape", cname, f"{host} must be 0.0.0.0 (the settings default to loopback)")
        if _env_value(server, "EVA_SERVICE_NAME") != svc.name:
            report.error("shape", cname, f"EVA_SERVICE_NAME must be {svc.name}")
        if not any("configMapRef" in item for item in server.get("envFrom") or []):
            report.error("shape", cname, "no envFrom configMapRef (the shared eva-config)")
    # probes: startup (gRPC native for gRPC services), readiness /readyz, liveness /healthz
    startup = server.get("startupProbe")
    if not startup:
        report.error("probes", cname, "no startupProbe")
    elif svc.grpc_port and (startup.get("grpc") or {}).get("port") != svc.grpc_port:
        report.error("probes", cname, f"startupProbe must be the native grpc probe on {svc.grpc_port}")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        got_path, got_port = probe_http_path(server.get(probe))
        if got_path != path or got_port not in ("http", svc.http_port):
            report.error("probes", cname, f"{probe} must be httpGet {path} on port http")
    # migrations: an initContainer running the app's image as the owner; the app never sees the owner URL
    inits = {c.get("name"): c for c in spec.get("initContainers") or []}
    if svc.database:
        migrate = inits.get("migrate")
        if migrate is None:
            report.error("shape", at, "no `migrate` initContainer (alembic upgrade head as eva_owner)")
        else:
            if migrate.get("command") != ["alembic", "-c", "alembic.ini", "upgrade", "head"]:
                report.error(
                    "shape", f"{at} initContainer migrate", "command must be alembic -c alembic.ini upgrade head"
                )
            if migrate.get("workingDir") != f"/app/{svc.directory}":
                report.error("shape", f"{at} initContainer migrate", f"workingDir must be /app/{svc.directory}")
            if migrate.get("image") != server.get("image"):
                report.error("image", f"{at} initContainer migrate", "must run the same image as the app")
            if _env_value(migrate, "EVA_MIGRATION_DATABASE_URL") is None:
                report.error("shape", f"{at} initContainer migrate", "no EVA_MIGRATION_DATABASE_URL")
        if _env_value(server, "EVA_DATABASE_URL") is None:
            report.error("shape", cname, "no EVA_DATABASE_URL")
    for container in main:
        if _env_value(container, "EVA_MIGRATION_DATABASE_URL") is not None:
            report.error(
                "owner-credentials",
                f"{at} container {container.get('name')}",
                "EVA_MIGRATION_DATABASE_URL belongs to the migrate initContainer only",
            )
        if any("secretRef" in item for item in container.get("envFrom") or []):
            report.error(
                "owner-credentials",
                f"{at} container {container.get('name')}",
                "envFrom secretRef would hand every key (the owner URL too) to the app: use secretKeyRef",
            )


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_services(target: Target, report: Report) -> None:
    where = f"deploy/k8s/{target.rel}"
    workloads = [o for o in target.objects if o.get("kind") in WORKLOAD_KINDS]
    for service in target.of_kind("Service"):
        at = f"{where}: Service/{name_of(service)}"
        spec = service.get("spec") or {}
        selector = spec.get("selector") or {}
        if not any(_selects(selector, pod_labels(w)) for w in workloads):
            report.error("service-selector", at, f"selector {selector} matches no workload's pods")
        app = selector.get("app")
        svc = DEPLOYABLES.get(str(app)) if app else None
        if svc is None:
            continue
        ports = spec.get("ports") or []
        for port in ports:
            if port.get("name") not in ("http", "grpc"):
                report.error(
                    "service-ports", at, f"port {port.get('port')} is named {port.get('name')!r}, not http or grpc"
                )
            elif port.get("targetPort") != port.get("name"):
                report.error("service-ports", at, f"port {port.get('name')} must target the container port by name")
        got = {p.get("name"): p.get("port") for p in ports}
        expected = {"http": svc.http_port} | ({"grpc": svc.grpc_port} if svc.grpc_port else {})
        if got != expected:
            report.error("service-ports", at, f"ports {got} must be {expected}")
        if svc.name == "gateway" and spec.get("sessionAffinity") != "ClientIP":
            report.error("gateway-affinity", at, "sessionAffinity must be ClientIP (Socket.io long-polling)")


def _secret_refs(obj: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    spec = pod_spec(obj) or {}
    for _, container in containers(spec):
        for item in container.get("env") or []:
            ref = (item.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                yield str(ref.get("name")), str(ref.get("key"))
        for item in container.get("envFrom") or []:
            if "secretRef" in item:
                yield str(item["secretRef"].get("name")), None
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            yield str(volume["secret"].get("secretName")), None


def _configmap_refs(obj: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    spec = pod_spec(obj) or {}
    for _, container in containers(spec):
        for item in container.get("env") or []:
            ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                yield str(ref.get("name")), str(ref.get("key"))
        for item in container.get("envFrom") or []:
            if "configMapRef" in item:
                yield str(item["configMapRef"].get("name")), None
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            yield str(volume["configMap"].get("name")), None


def check_secrets(target: Target, report: Report) -> None:
    where = f"deploy/k8s/{target.rel}"
    for obj in target.objects:
        at = f"{where}: {ident(obj)}"
        if obj.get("kind") == "Secret":
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if not target.is_dev:
                report.error(
                    "literal-secret",
                    at,
                    "a Secret with values in the manifests: production Secrets are "
                    "created outside the repository (only the dev overlay may generate dev-only ones)",
                )
            elif annotations.get(DEV_ONLY_ANNOTATION) != "true":
                report.error("literal-secret", at, f'dev Secrets must be annotated {DEV_ONLY_ANNOTATION}: "true"')
            continue
        spec = pod_spec(obj)
        if spec is not None:
            for _, container in containers(spec):
                for item in container.get("env") or []:
                    if "value" in item and SECRET_NAME.search(str(item.get("name", ""))):
                        report.error(
                            "literal-secret",
                            f"{at} container {container.get('name')}",
                            f"env {item.get('name')} has a literal value: use a secretKeyRef",
                        )
        if obj.get("kind") == "ConfigMap":
            for key in obj.get("data") or {}:
                if SECRET_NAME.search(str(key)):
                    report.error("literal-secret", at, f"key {key} looks secret: put it in a Secret")
        for path, value in strings(obj):
            if PRIVATE_KEY.search(value):
                report.error("literal-secret", at, f"{path} holds a private key")
            match = CREDENTIAL_URL.search(value)
            if match:
                report.error("literal-secret", at, f"{path} holds a URL with a password")
    secrets = {name_of(s): s for s in target.of_kind("Secret")}
    configmaps = {name_of(c): c for c in target.of_kind("ConfigMap")}
    external: dict[str, set[str]] = {}
    for obj in target.objects:
        at = f"{where}: {ident(obj)}"
        for name, key in _configmap_refs(obj):
            configmap = configmaps.get(name)
            if configmap is None:
                report.error("config-ref", at, f"ConfigMap {name} is not rendered")
            elif key is not None and key not in (configmap.get("data") or {}):
                report.error("config-ref", at, f"ConfigMap {name} has no key {key}")
        for name, key in _secret_refs(obj):
            if target.is_dev:
                secret = secrets.get(name)
                if secret is None:
                    report.error("config-ref", at, f"Secret {name} is not generated by the dev overlay")
                elif key is not None and key not in (secret.get("data") or {}) | (secret.get("stringData") or {}):
                    report.error("config-ref", at, f"Secret {name} has no key {key}")
            elif key is not None:
                external.setdefault(name, set()).add(key)
    if external and target.is_overlay:
        report.note(f"deploy/k8s/{target.rel} expects these Secrets in its namespace:")
        for name in sorted(external):
            report.note(f"    {name}: {', '.join(sorted(external[name]))}")


def check_config(target: Target, report: Report) -> None:
    where = f"deploy/k8s/{target.rel}"
    config = next((c for c in target.of_kind("ConfigMap") if name_of(c).startswith("eva-config")), None)
    if config is None:
        report.error("environment", where, "no eva-config ConfigMap")
        return
    data = config.get("data") or {}
    for key in REQUIRED_CONFIG_KEYS:
        if key not in data:
            report.error("environment", f"{where}: {ident(config)}", f"no {key}")
    expected = ("dev", SIMULATOR_URL) if target.is_dev else ("production", META_GRAPH_URL)
    got = (data.get("EVA_ENVIRONMENT"), data.get("EVA_WHATSAPP_GRAPH_URL"))
    if got != expected:
        report.error(
            "environment",
            f"{where}: {ident(config)}",
            f"EVA_ENVIRONMENT / EVA_WHATSAPP_GRAPH_URL are {got}, expected {expected}",
        )


def check_ingress(target: Target, report: Report) -> None:
    where = f"deploy/k8s/{target.rel}"
    for ingress in target.of_kind("Ingress"):
        at = f"{where}: {ident(ingress)}"
        annotations = (ingress.get("metadata") or {}).get("annotations") or {}
        backends: set[str] = set()
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                service = (path.get("backend") or {}).get("service") or {}
                name, port = str(service.get("name")), (service.get("port") or {}).get("name")
                backends.add(name)
                svc = DEPLOYABLES.get(name)
                if svc is None or not svc.public:
                    report.error("ingress", at, f"routes to {name}, which is not a public deployable")
                if target.find("Service", name) is None:
                    report.error("ingress", at, f"routes to missing Service {name}")
                if port != "http":
                    report.error("ingress", at, f"routes to {name} port {port!r}: use the port name http")
        if "gateway" in backends and annotations.get("nginx.ingress.kubernetes.io/affinity") != "cookie":
            report.error("gateway-affinity", at, "the gateway's Ingress needs cookie affinity (Socket.io polling)")
        if "webhook-ingest" in backends:
            size = str(annotations.get("nginx.ingress.kubernetes.io/proxy-body-size", "1m"))
            match = re.fullmatch(r"(\d+)([kKmMgG]?)", size)
            factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
            if not match or int(match.group(1)) * factor[match.group(2).lower()] < 3_145_728:
                report.error("ingress", at, "proxy-body-size must admit Meta's 3 MB deliveries")


def check_network_policies(target: Target, report: Report) -> None:
    policies = target.of_kind("NetworkPolicy")
    deny = any(
        ((p.get("spec") or {}).get("podSelector") or {}) == {}
        and set((p.get("spec") or {}).get("policyTypes") or []) == {"Ingress", "Egress"}
        and not (p.get("spec") or {}).get("ingress")
        and not (p.get("spec") or {}).get("egress")
        for p in policies
    )
    if not deny:
        return
    for deployment in target.of_kind("Deployment"):
        labels = pod_labels(deployment)
        own = [
            p
            for p in policies
            if ((p.get("spec") or {}).get("podSelector") or {}).get("matchLabels") == {"app": labels.get("app")}
        ]
        if not own:
            report.error(
                "network-policy",
                f"deploy/k8s/{target.rel}: {ident(deployment)}",
                "default deny is on but no NetworkPolicy selects app: " + str(labels.get("app")),
            )


def check_autoscaling(target: Target, report: Report) -> None:
    where = f"deploy/k8s/{target.rel}"
    deployments = {name_of(d): d for d in target.of_kind("Deployment")}
    for hpa in target.of_kind("HorizontalPodAutoscaler"):
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
            report.error(
                "autoscaling", f"{where}: {ident(hpa)}", f"targets missing {ref.get('kind')}/{ref.get('name')}"
            )
    for pdb in target.of_kind("PodDisruptionBudget"):
        selector = (((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
        if not any(_selects(selector, pod_labels(d)) for d in deployments.values()):
            report.error("autoscaling", f"{where}: {ident(pdb)}", f"selector {selector} matches no Deployment")


def check_kafka_wiring(target: Target, report: Report) -> None:
    """The services, the node pools and the topics all reach the Strimzi Kafka that the target renders."""
    where = f"deploy/k8s/{target.rel}"
    clusters = {name_of(k): k for k in target.of_kind("Kafka") if str(k.get("apiVersion", "")).startswith("kafka.")}
    if not clusters:
        return
    brokers = dict.fromkeys(clusters, 0)
    for kind in ("KafkaNodePool", "KafkaTopic"):
        for obj in target.of_kind(kind):
            cluster = ((obj.get("metadata") or {}).get("labels") or {}).get("strimzi.io/cluster")
            if cluster not in clusters:
                report.error("kafka-wiring", f"{where}: {ident(obj)}", f"strimzi.io/cluster {cluster!r}: no such Kafka")
            elif kind == "KafkaNodePool" and "broker" in ((obj.get("spec") or {}).get("roles") or []):
                brokers[str(cluster)] += int((obj.get("spec") or {}).get("replicas") or 0)
    for topic in target.of_kind("KafkaTopic"):
        spec = topic.get("spec") or {}
        cluster = str(((topic.get("metadata") or {}).get("labels") or {}).get("strimzi.io/cluster"))
        replicas = int(spec.get("replicas") or 0)
        min_insync = int((spec.get("config") or {}).get("min.insync.replicas") or 1)
        if cluster in brokers and replicas > brokers[cluster]:
            report.error("kafka-wiring", f"{where}: {ident(topic)}", f"{replicas} replicas, {brokers[cluster]} brokers")
        if replicas and min_insync >= replicas:
            report.error("kafka-wiring", f"{where}: {ident(topic)}",
                         f"min.insync.replicas {min_insync} leaves no replica to lose (replicas {replicas})")
    if not target.is_overlay:  # build-only targets keep the base's placeholder address
        return
    config = next((c for c in target.of_kind("ConfigMap") if name_of(c).startswith("eva-config")), None)
    bootstrap = ((config or {}).get("data") or {}).get("EVA_KAFKA_BOOTSTRAP")
    expected = sorted(
        f"{name}-kafka-bootstrap:{listener.get('port')}"
        for name, kafka in clusters.items()
        for listener in (((kafka.get("spec") or {}).get("kafka") or {}).get("listeners") or [])
        if not listener.get("tls") and not listener.get("authentication") and listener.get("type") == "internal"
    )
    if bootstrap not in expected:
        report.error("kafka-wiring", f"{where}: eva-config", f"EVA_KAFKA_BOOTSTRAP={bootstrap} is not the "
                     f"rendered Kafka's plain listener ({', '.join(expected)})")


def check_kustomize_sources(kustomizations: list[Kustomization], report: Report) -> None:
    used: set[Path] = set()
    for k in kustomizations:
        where = f"deploy/k8s/{k.rel}"
        for ref in k.data.get("components") or []:
            used.add((k.path / str(ref)).resolve())
        generators = k.data.get("secretGenerator") or []
        dev = k.rel == "overlays/dev" or k.rel.startswith("overlays/dev/")
        for generator in generators:
            name = generator.get("name", "?")
            if not dev:
                report.error(
                    "secret-generator",
                    where,
                    f"secretGenerator {name}: only the dev overlay generates (dev-only) Secrets",
                )
            annotations = (generator.get("options") or {}).get("annotations") or {}
            if annotations.get(DEV_ONLY_ANNOTATION) != "true":
                report.error(
                    "secret-generator",
                    where,
                    f'secretGenerator {name} lacks the annotation {DEV_ONLY_ANNOTATION}: "true"',
                )
        if k.kind == "Component" and k.data.get("apiVersion") != "kustomize.config.k8s.io/v1alpha1":
            report.error("components", where, "a Component uses apiVersion kustomize.config.k8s.io/v1alpha1")
    for k in kustomizations:
        if k.kind == "Component" and k.path.resolve() not in used:
            report.error(
                "components",
                f"deploy/k8s/{k.rel}",
                "no target uses this Component, so it is never "
                "validated: add it to a target (deploy/k8s/tests/all-components)",
            )


# --------------------------------------------------------------------------------------------- compose

_INTERPOLATION = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


def parse_env_file(path: Path) -> dict[str, str]:
    """A dotenv file as compose reads it (KEY=VALUE, `export `, quotes, `#` comments)."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].encode().decode("unicode_escape")
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        env[key.strip()] = value
    return env


@dataclass
class Interpolator:
    env: Mapping[str, str]
    file: str
    report: Report
    used: set[str] = field(default_factory=set)

    def __call__(self, value: Any, path: str = "") -> Any:
        if isinstance(value, str):
            return _INTERPOLATION.sub(lambda m: self._one(m, path), value)
        if isinstance(value, Mapping):
            return {key: self(item, f"{path}.{key}" if path else str(key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value

    def _one(self, match: re.Match[str], path: str) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            name = match.group("named")
            self.used.add(name)
            return self.env.get(name, "")
        expr = _BRACED.match(match.group("braced") or "")
        if expr is None:
            self.report.error("compose-env", f"{self.file} {path}", f"cannot interpolate {match.group(0)!r}")
            return ""
        name, op, arg = expr.group("name"), expr.group("op"), expr.group("arg") or ""
        self.used.add(name)
        present = name in self.env
        value = self.env.get(name, "")
        if op in (":?", "?"):
            if not present:
                self.report.error(
                    "compose-env",
                    f"{self.file} {path}",
                    f"requires ${{{name}}}, which deploy/compose/.env.example does not list",
                )
            return value
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if present else arg
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if present else ""
        if not present:
            self.report.error(
                "compose-env",
                f"{self.file} {path}",
                f"uses ${{{name}}} with no default; list it in deploy/compose/.env.example",
            )
        return value


_LIST_MERGED = frozenset({"ports", "volumes", "expose", "tmpfs", "cap_drop", "cap_add", "security_opt", "dns"})


def merge_compose(base: Any, override: Any, key: str = "") -> Any:
    """The parts of compose's merge that the rules need: mappings merge, these sequences append, the rest replaces."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for k, v in override.items():
            merged[k] = merge_compose(base[k], v, str(k)) if k in base else v
        return merged
    if isinstance(base, list) and isinstance(override, list) and key in _LIST_MERGED:
        return base + [item for item in override if item not in base]
    return override


def compose_schema_errors(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """check-jsonschema's vendored compose-spec over the interpolated documents (one run for all of them)."""
    errors: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, document in documents.items():
            path = Path(tmp) / name  # JSON is YAML: check-jsonschema parses it by the .yml suffix
            path.write_text(json.dumps(document))
            paths.append(str(path))
        result = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", *paths],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        output = (result.stdout + result.stderr).replace(tmp + os.sep, "")
    if result.returncode == 0:
        return errors
    noise = ("DeprecationWarning", "Schema validation errors were encountered", "warnings.warn")
    for line in output.splitlines():
        line = line.strip()
        if not line or any(n in line for n in noise):
            continue
        name = next((n for n in documents if line.startswith(f"{n}::")), next(iter(documents)))
        errors.setdefault(name, []).append(line)
    if not errors:
        errors[next(iter(documents))] = [f"check-jsonschema exited {result.returncode}"]
    return errors


def _env_map(service: Mapping[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {str(item).partition("=")[0]: str(item).partition("=")[2] for item in env}
    return dict(env)


def _is_one_shot(service: Mapping[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


def check_compose_secrets(raw: Mapping[str, Any], file: str, report: Report) -> None:
    for name, service in (raw.get("services") or {}).items():
        for key, value in _env_map(service).items():
            text = "" if value is None else str(value)
            at = f"{file} services.{name}.environment.{key}"
            if SECRET_NAME.search(key) and text and "${" not in text:
                report.error("compose-literal-secret", at, "a literal secret: use ${VAR:?Variable not set}")
            for match in CREDENTIAL_URL.finditer(text):
                if not match.group("password").startswith("${"):
                    report.error("compose-literal-secret", at, "a URL with a literal password")
            if PRIVATE_KEY.search(text):
                report.error("compose-literal-secret", at, "a literal private key")


def check_compose(root: Path, report: Report) -> None:
    compose_dir = root / "deploy" / "compose"
    base_file, override_file, env_file = (
        compose_dir / "compose.yml",
        compose_dir / "compose.override.yml",
        compose_dir / ".env.example",
    )
    for path in (base_file, override_file, env_file):
        if not path.is_file():
            report.error("compose-services", "deploy/compose", f"missing {path.name}")
            return
    example = parse_env_file(env_file)
    # Secrets are empty in .env.example on purpose (compose refuses to start until they are set): validate with
    # a stand-in value, as an operator's .env would have one.
    env = {key: value if value else f"example-{key.lower().replace('_', '-')}" for key, value in example.items()}
    used: set[str] = set()
    raws: dict[str, dict[str, Any]] = {}
    documents: dict[str, dict[str, Any]] = {}
    # Every compose file of the folder (more layers, e.g. `-f compose.yml -f compose.<x>.yml`) is interpolated and
    # schema-checked; the production and development rules read the two above.
    layers = sorted(p for p in compose_dir.glob("compose.*.y*ml") if p not in (base_file, override_file))
    for path in (base_file, override_file, *layers):
        rel = f"deploy/compose/{path.name}"
        raw = yaml.safe_load(path.read_text()) or {}
        raws[path.name] = raw
        interpolate = Interpolator(env, rel, report)
        document = interpolate(raw)
        documents[path.name] = document
        used |= interpolate.used
        check_compose_secrets(raw, rel, report)
    for name, messages in compose_schema_errors(documents).items():
        for message in messages:
            report.error("compose-schema", f"deploy/compose/{name}", message)
    for key in sorted(set(example) - used - {"KAFKA_CLUSTER_ID"}):
        report.note(f"deploy/compose/.env.example: {key} is not used by the compose files")
    # Rules read the raw files (to see `${...}`), except image references, read after interpolation.
    images = {
        f"{file}/{name}": str(service.get("image", ""))
        for file, document in documents.items()
        for name, service in (document.get("services") or {}).items()
    }
    base, override = raws["compose.yml"], raws["compose.override.yml"]
    check_compose_production(base, images, report)
    check_compose_edge(root, dict(base.get("services") or {}), images, "deploy/compose/compose.yml", report)
    check_compose_development(base, override, images, report)


def check_compose_production(base: Mapping[str, Any], images: Mapping[str, str], report: Report) -> None:
    file = "deploy/compose/compose.yml"
    services: dict[str, Any] = dict(base.get("services") or {})
    for name, service in services.items():
        at = f"{file} services.{name}"
        if "restart" not in service:
            report.error("compose-health", at, "no restart policy")
        limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        if "cpus" not in limits or "memory" not in limits:
            report.error("compose-health", at, "no deploy.resources.limits (cpus and memory)")
        if not _is_one_shot(service) and not service.get("healthcheck"):
            report.error("compose-health", at, "a long-running service without a healthcheck")
        for port in service.get("ports") or []:
            if name != EDGE_SERVICE or str(port) not in EDGE_PORTS:
                report.error(
                    "compose-ports", at, f"publishes {port}: in compose.yml only the {EDGE_SERVICE} publishes ports "
                    f"({', '.join(EDGE_PORTS)}); the public deployables are reached through it",
                )
    published = [str(p) for p in (services.get(EDGE_SERVICE) or {}).get("ports") or []]
    for expected in EDGE_PORTS:
        if expected not in published:
            report.error("compose-ports", f"{file} services.{EDGE_SERVICE}", f"must publish {expected}")
    check_compose_depends_on(services, file, report)
    for svc in SERVICES:
        check_compose_service(services, images, svc, file, report)
    if "simulator" in services:
        report.error("compose-dev", f"{file} services.simulator", "the simulator is dev-only: compose.override.yml")
    redis = services.get("redis")
    command = " ".join(str(c) for c in (redis or {}).get("command") or []) if redis else ""
    if not redis or "--maxmemory-policy noeviction" not in command or "--appendonly yes" not in command:
        report.error(
            "redis-config",
            f"{file} services.redis",
            "redis-server needs --maxmemory-policy noeviction and --appendonly yes",
        )


# The compose edge: Caddy, the only service that publishes ports (deploy/compose/edge/Caddyfile).
EDGE_SERVICE = "edge"
EDGE_PORTS = ("80:80", "443:443", "443:443/udp")
EDGE_CADDYFILE = "deploy/compose/edge/Caddyfile"
EDGE_CADDYFILE_MOUNT = "./edge/Caddyfile:/etc/caddy/Caddyfile:ro"
# What a public deployable reads the edge's address from: the gateway applies its own trusted-proxy rules
# (EVA_TRUSTED_PROXIES); the others let uvicorn rewrite the client address (FORWARDED_ALLOW_IPS).
PROXY_TRUST_VARIABLES = ("EVA_TRUSTED_PROXIES", "FORWARDED_ALLOW_IPS")


def edge_image() -> str:
    """The edge's image: the Caddy release that scripts/tools.py pins and scripts/tests/test_edge.py runs."""
    return f"caddy:{tools.CADDY.version.removeprefix('v')}-alpine"


GRAFANA_UPSTREAM = "grafana:3000"  # the compose Grafana, which the edge serves under /grafana/


def check_compose_edge(root: Path, services: Mapping[str, Any], images: Mapping[str, str], file: str,
                       report: Report) -> None:
    at = f"{file} services.{EDGE_SERVICE}"
    edge = services.get(EDGE_SERVICE)
    if edge is None:
        report.error("compose-edge", file, f"no {EDGE_SERVICE} service (Caddy, TLS in front of the public deployables)")
        return
    image = images.get(f"compose.yml/{EDGE_SERVICE}", "")
    if image != edge_image():
        report.error("compose-edge", at, f"image must be {edge_image()} (the Caddy the tests run), not {image!r}")
    volumes = [str(v) for v in edge.get("volumes") or []]
    if EDGE_CADDYFILE_MOUNT not in volumes:
        report.error("compose-edge", at, f"must mount {EDGE_CADDYFILE_MOUNT}")
    for folder in ("/data", "/config"):  # certificates and the ACME account must survive a new container
        if not any(v.endswith(f":{folder}") and not v.startswith((".", "/")) for v in volumes):
            report.error("compose-edge", at, f"needs a named volume at {folder}")
    env = _env_map(edge)
    for key in ("EVA_DOMAIN", "EVA_ACME_EMAIL"):
        if not str(env.get(key, "")).startswith(f"${{{key}:?"):
            report.error("compose-edge", at, f"{key} must be required from the environment (${{{key}:?...}})")
    networks = edge.get("networks") or {}
    address = str(((networks.get(EDGE_SERVICE) or {}) if isinstance(networks, Mapping) else {}).get("ipv4_address", ""))
    if not address:
        report.error("compose-edge", at, f"needs a fixed ipv4_address on the {EDGE_SERVICE} network")
    for svc in SERVICES:
        service = services.get(svc.name)
        if not svc.public or service is None:
            continue
        s_at = f"{file} services.{svc.name}"
        if EDGE_SERVICE not in (service.get("networks") or []):
            report.error("compose-edge", s_at, f"a public deployable must join the {EDGE_SERVICE} network")
        trusted = {k: str(v) for k, v in _env_map(service).items() if k in PROXY_TRUST_VARIABLES}
        if not trusted or any(value != address for value in trusted.values()):
            report.error("compose-edge", s_at, f"must believe X-Forwarded-For from the edge only: set one of "
                         f"{', '.join(PROXY_TRUST_VARIABLES)} to {address!r}, not {trusted}")
    caddyfile = root / EDGE_CADDYFILE
    if not caddyfile.is_file():
        report.error("compose-edge", EDGE_CADDYFILE, "missing")
        return
    try:
        caddy = edge_server.install()
    except edge_server.EdgeError as error:
        raise ToolError(str(error)) from error
    problems = edge_server.validate(caddy, edge_server.EXAMPLE_ENV, caddyfile)
    for problem in problems:
        report.error("compose-edge", EDGE_CADDYFILE, problem)
    if problems:
        return
    # With compose's values the edge proxies to exactly the public deployables, at their container ports, and Grafana.
    routed = edge_server.upstreams(edge_server.adapt(caddy, edge_server.EXAMPLE_ENV, caddyfile))
    expected = {f"{svc.name}:{svc.http_port}" for svc in SERVICES if svc.public} | {GRAFANA_UPSTREAM}
    if routed != expected:
        report.error("compose-edge", EDGE_CADDYFILE, f"proxies to {sorted(routed)}, not the public deployables "
                     f"{sorted(expected)}")


def check_compose_depends_on(services: Mapping[str, Any], file: str, report: Report) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        at = f"{file} services.{name}.depends_on"
        if isinstance(depends, list):
            report.error("compose-depends-on", at, "use the long syntax with a condition")
            continue
        for dep, options in depends.items():
            condition = (options or {}).get("condition")
            if dep not in services:
                report.error("compose-depends-on", at, f"{dep} is not a service")
                continue
            if condition not in ("service_started", "service_healthy", "service_completed_successfully"):
                report.error("compose-depends-on", at, f"{dep}: no condition")
            one_shot = _is_one_shot(services[dep])
            if one_shot and condition != "service_completed_successfully":
                report.error("compose-depends-on", at, f"{dep} is a one-shot: wait for service_completed_successfully")
            if not one_shot and condition == "service_completed_successfully":
                report.error("compose-depends-on", at, f"{dep} never completes: use service_healthy")
            if condition == "service_healthy" and not services[dep].get("healthcheck"):
                report.error("compose-depends-on", at, f"{dep} has no healthcheck to wait for")


def check_compose_service(
    services: Mapping[str, Any], images: Mapping[str, str], svc: Deployable, file: str, report: Report
) -> None:
    at = f"{file} services.{svc.name}"
    service = services.get(svc.name)
    if service is None:
        report.error("compose-services", file, f"no service {svc.name}")
        return
    image = images.get(f"compose.yml/{svc.name}", "")
    repo, tag = image_parts(image)
    if repo != f"eva/{svc.name}" or not tag:
        report.error("compose-services", at, f"image must be eva/{svc.name}:<tag>, not {image!r}")
    env = _env_map(service)
    expected = {
        "EVA_SERVICE_NAME": svc.name,
        "EVA_HTTP_PORT": str(svc.http_port),
        "EVA_HTTP_HOST": "0.0.0.0",
        "EVA_ENVIRONMENT": "production",
    }
    if svc.grpc_port:
        expected["EVA_GRPC_PORT"] = str(svc.grpc_port)
        expected["EVA_GRPC_HOST"] = "0.0.0.0"
    for key, value in expected.items():
        if str(env.get(key)) != value:
            report.error("compose-services", at, f"{key} must be {value}, not {env.get(key)!r}")
    if service.get("user") != f"{EVA_UID}:{EVA_UID}" or service.get("read_only") is not True:
        report.error("compose-services", at, f'needs user "{EVA_UID}:{EVA_UID}" and read_only: true')
    if "ALL" not in (service.get("cap_drop") or []) or "no-new-privileges:true" not in (
        service.get("security_opt") or []
    ):
        report.error("compose-services", at, "needs cap_drop [ALL] and security_opt no-new-privileges:true")
    test = " ".join(str(t) for t in (service.get("healthcheck") or {}).get("test") or [])
    if "/readyz" not in test:
        report.error("compose-health", at, "the healthcheck must probe /readyz")
    if "EVA_MIGRATION_DATABASE_URL" in env:
        report.error("owner-credentials", at, "EVA_MIGRATION_DATABASE_URL belongs to the migrate service only")
    if svc.database is None:
        return
    url = str(env.get("EVA_DATABASE_URL", ""))
    if not re.match(rf"postgresql\+asyncpg://eva_app:\$\{{[^}}]+\}}@[^/]+/{svc.database}$", url):
        report.error("compose-services", at, f"EVA_DATABASE_URL must connect as eva_app to {svc.database}")
    migrate_name = f"{svc.name}-migrate"
    migrate = services.get(migrate_name)
    m_at = f"{file} services.{migrate_name}"
    if migrate is None:
        report.error("compose-services", file, f"no one-shot {migrate_name}")
        return
    if migrate.get("command") != ["alembic", "-c", "alembic.ini", "upgrade", "head"]:
        report.error("compose-services", m_at, "command must be [alembic, -c, alembic.ini, upgrade, head]")
    if migrate.get("working_dir") != f"/app/{svc.directory}":
        report.error("compose-services", m_at, f"working_dir must be /app/{svc.directory}")
    if migrate.get("image") != service.get("image"):
        report.error("compose-services", m_at, "must run the service's own image")
    if not _is_one_shot(migrate):
        report.error("compose-services", m_at, 'a one-shot: restart "no"')
    m_url = str(_env_map(migrate).get("EVA_MIGRATION_DATABASE_URL", ""))
    if not re.match(rf"postgresql\+asyncpg://eva_owner:\$\{{[^}}]+\}}@[^/]+/{svc.database}$", m_url):
        report.error(
            "compose-services", m_at, f"EVA_MIGRATION_DATABASE_URL must connect as eva_owner to {svc.database}"
        )
    condition = ((service.get("depends_on") or {}).get(migrate_name) or {}).get("condition")
    if condition != "service_completed_successfully":
        report.error("compose-depends-on", at, f"must wait for {migrate_name}: service_completed_successfully")


def check_compose_development(
    base: Mapping[str, Any], override: Mapping[str, Any], images: Mapping[str, str], report: Report
) -> None:
    file = "deploy/compose/compose.override.yml"
    merged = merge_compose(base, override)
    services: dict[str, Any] = dict(merged.get("services") or {})
    if "simulator" not in (override.get("services") or {}):
        report.error("compose-dev", file, "no simulator service")
    else:
        repo, tag = image_parts(images.get("compose.override.yml/simulator", ""))
        if repo != "eva/simulator" or not tag:
            report.error("compose-dev", f"{file} services.simulator", "image must be eva/simulator:<tag>")
    for name, service in (override.get("services") or {}).items():
        for port in service.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                report.error("compose-ports", f"{file} services.{name}", f"debugging port {port} must bind 127.0.0.1")
    check_compose_builds(services, file, report)
    for svc in SERVICES:
        env = _env_map(services.get(svc.name) or {})
        at = f"{file} services.{svc.name}"
        if env.get("EVA_ENVIRONMENT") != "dev":
            report.error("compose-dev", at, "EVA_ENVIRONMENT must be dev in development")
        if env.get("EVA_WHATSAPP_GRAPH_URL") != SIMULATOR_URL:
            report.error("compose-dev", at, f"EVA_WHATSAPP_GRAPH_URL must be {SIMULATOR_URL} in development")
    check_compose_depends_on(services, file, report)


def check_compose_builds(services: Mapping[str, Any], file: str, report: Report) -> None:
    """Each deployable (and its migration) builds from the one Dockerfile with its own registry row."""
    for name, service in services.items():
        build = service.get("build")
        owner = DEPLOYABLES.get(name.removesuffix("-migrate"))
        at = f"{file} services.{name}.build"
        if build is None:
            if owner is not None:
                report.error("compose-build", at, f"no build: the development layer builds eva/{owner.name}")
            continue
        if owner is None:
            report.error("compose-build", at, "builds an image but is not in deploy/deployables.toml")
            continue
        if not isinstance(build, Mapping) or build.get("context") != "../.." or build.get("dockerfile") != DOCKERFILE:
            report.error("compose-build", at, f"must build context ../.. with dockerfile {DOCKERFILE}")
            continue
        args = {str(k): str(v) for k, v in (build.get("args") or {}).items()}
        if args != dict(owner.build_args):
            report.error("compose-build", at, f"args {args} differ from the registry's {dict(owner.build_args)}")


# --------------------------------------------------------------------------------------------- registry + image


def check_registry(root: Path, report: Report) -> list[deployables.Deployable] | None:
    """The registry of --root (deploy/deployables.toml): its rows, or None (and an error) when it is unusable."""
    path = root / "deploy" / "deployables.toml"
    try:
        rows = list(deployables.load(path))
    except (OSError, deployables.RegistryError) as error:
        report.error("registry", "deploy/deployables.toml", str(error))
        return None
    if (root / "pyproject.toml").is_file():  # a whole checkout (tests validate a copy of deploy/ alone)
        for problem in deployables.workspace_problems(rows, root):
            report.error("registry", "deploy/deployables.toml", problem)
    return rows


DOCKERFILE_ARG = re.compile(r"^ARG\s+([A-Z_]+)", re.M)


def check_dockerfile(root: Path, report: Report) -> None:
    path = root / DOCKERFILE
    if not path.is_file():
        report.error("dockerfile", DOCKERFILE, "missing")
        return
    text = path.read_text()
    declared = set(DOCKERFILE_ARG.findall(text))
    wanted = {key for d in DEPLOYABLES.values() for key, _ in d.build_args}
    for key in sorted(wanted - declared):
        report.error("dockerfile", DOCKERFILE, f"no ARG {key} (a build argument of every registry row)")
    for key in sorted(declared - wanted):
        report.error("dockerfile", DOCKERFILE, f"ARG {key} is not a registry build argument")
    if not re.search(rf"^USER {EVA_UID}:{EVA_UID}\s*$", text, re.M):
        report.error("dockerfile", DOCKERFILE, f"must end as USER {EVA_UID}:{EVA_UID}")
    for deployable in DEPLOYABLES.values():
        own = root / deployable.directory / "Dockerfile"
        if own.is_file():
            report.error("dockerfile", f"{deployable.directory}/Dockerfile",
                         f"a copy: {deployable.name} builds from {DOCKERFILE}")


# --------------------------------------------------------------------------------------------- consistency


def expected_topics() -> list[tuple[str, int, int]] | None:
    try:
        topics = importlib.import_module("eva_events.topics")
    except ImportError:
        return None
    return [(spec.name, spec.partitions, spec.max_message_bytes) for spec in topics.ALL_TOPICS]


def check_consistency(root: Path, report: Report) -> None:
    deploy = root / "deploy"
    topic_files = [
        deploy / "compose/init/kafka/create-topics.sh",
        deploy / "k8s/components/kafka-topics/create-topics.sh",
    ]
    sql_pairs = [
        (deploy / "compose/init/postgres/provision.sql", deploy / "k8s/components/postgres-init/provision.sql"),
        (deploy / "compose/init/postgres/provision.sh", deploy / "k8s/components/postgres-init/provision.sh"),
    ]
    for path in topic_files + [p for pair in sql_pairs for p in pair]:
        if not path.is_file():
            report.error("topics" if "topics" in path.name else "provision-sql", str(path.relative_to(root)), "missing")
            return
    if topic_files[0].read_text() != topic_files[1].read_text():
        report.error(
            "topics", str(topic_files[1].relative_to(root)), f"differs from {topic_files[0].relative_to(root)}"
        )
    expected = expected_topics()
    if expected is None:
        report.note("eva_events is not importable: topic names not compared with eva_events.topics")
    else:
        created = [
            (m.group(1), int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"^create (\S+) (\d+) (\d+)\s*$", topic_files[0].read_text(), re.M)
        ]
        for item in sorted(set(expected) - set(created)):
            report.error(
                "topics",
                str(topic_files[0].relative_to(root)),
                f"missing `create {item[0]} {item[1]} {item[2]}` (eva_events.topics)",
            )
        for item in sorted(set(created) - set(expected)):
            report.error(
                "topics",
                str(topic_files[0].relative_to(root)),
                f"`create {item[0]} {item[1]} {item[2]}` is not in eva_events.topics.ALL_TOPICS",
            )
    for original, copy in sql_pairs:
        if original.read_text() != copy.read_text():
            report.error("provision-sql", str(copy.relative_to(root)), f"differs from {original.relative_to(root)}")
    sql = sql_pairs[0][0].read_text()
    at = str(sql_pairs[0][0].relative_to(root))
    for svc in SERVICES:
        if svc.database and f"CREATE DATABASE {svc.database} OWNER eva_owner" not in sql:
            report.error("provision-sql", at, f"does not create {svc.database} owned by eva_owner")
        if svc.database and not re.search(
            rf"\\connect {svc.database}\n(?:.*\n)*?ALTER DEFAULT PRIVILEGES FOR ROLE eva_owner IN SCHEMA public "
            rf"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO eva_app;",
            sql,
        ):
            report.error("provision-sql", at, f"no default privileges for eva_app in {svc.database}")
    if not re.search(r"ALTER ROLE eva_app LOGIN NOSUPERUSER .*NOBYPASSRLS", sql):
        report.error("provision-sql", at, "eva_app must be NOSUPERUSER ... NOBYPASSRLS")


def check_strimzi_topics(root: Path, report: Report) -> None:
    """components/strimzi-kafka/topics.yaml is exactly what scripts/strimzi_topics.py renders from eva_events."""
    try:
        strimzi_topics = importlib.import_module("strimzi_topics")  # imports eva_events
    except ImportError:
        report.note("eva_events is not importable: the KafkaTopics are not compared with eva_events.topics")
        return
    path = root / strimzi_topics.OUTPUT
    before = len(report.findings)
    if not path.is_file():
        report.error("topics", str(strimzi_topics.OUTPUT), "missing: run scripts/strimzi_topics.py")
        return
    expected = list(yaml.safe_load_all(strimzi_topics.render()))
    actual = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    by_name = {str(doc.get("spec", {}).get("topicName")): doc for doc in actual if isinstance(doc, dict)}
    for doc in expected:
        name = doc["spec"]["topicName"]
        if name not in by_name:
            report.error("topics", str(strimzi_topics.OUTPUT), f"no KafkaTopic for {name} (eva_events.topics)")
        elif by_name[name] != doc:
            report.error("topics", str(strimzi_topics.OUTPUT), f"KafkaTopic {name} differs from eva_events.topics: "
                         f"{by_name[name].get('spec')} != {doc['spec']}")
    for name in sorted(set(by_name) - {doc["spec"]["topicName"] for doc in expected}):
        report.error("topics", str(strimzi_topics.OUTPUT), f"KafkaTopic {name} is not in eva_events.topics")
    if len(report.findings) == before and path.read_text() != strimzi_topics.render():
        report.error("topics", str(strimzi_topics.OUTPUT), "differs from what scripts/strimzi_topics.py writes")


def check_yamllint(root: Path, report: Report) -> None:
    from yamllint import linter  # type: ignore[import-untyped]
    from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

    deploy = root / "deploy"
    config_file = deploy / ".yamllint.yaml"
    config = YamlLintConfig(file=str(config_file)) if config_file.is_file() else YamlLintConfig("extends: default")
    files = sorted(p for p in deploy.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
    for path in files:
        rel = path.relative_to(root).as_posix()
        for problem in linter.run(path.read_text(), config, rel):
            if problem.level == "error":
                report.error("yamllint", f"{rel}:{problem.line}:{problem.column}", f"{problem.desc} ({problem.rule})")


# --------------------------------------------------------------------------------------------- main


def check_k8s(
    root: Path,
    report: Report,
    *,
    kustomize_bin: str | None,
    only_targets: Sequence[str],
    schemas: KubeSchemas | None,
    out: list[str],
    crds: crd_schemas.CustomResourceSchemas | None = None,
) -> None:
    k8s_root = root / "deploy" / "k8s"
    kustomizations = discover_kustomizations(k8s_root)
    check_kustomize_sources(kustomizations, report)
    targets = [k for k in kustomizations if k.kind != "Component"]
    if only_targets:
        targets = [k for k in targets if k.rel in only_targets]
    if not targets:
        report.error("kustomize-build", "deploy/k8s", "no kustomize target found")
        return
    kustomize = find_kustomize(kustomize_bin)
    out.append(f"kustomize {tools.KUSTOMIZE.version} ({kustomize}); Kubernetes schemas {K8S_VERSION}, strict")
    for k in targets:
        objects, error = render(kustomize, k.path)
        if error is not None:
            report.error("kustomize-build", f"deploy/k8s/{k.rel}", error)
            continue
        before = len(report.findings)
        check_target(Target(k.rel, objects), report, schemas, crds)
        problems = len(report.findings) - before
        out.append(f"  k8s {k.rel:<24} {len(objects):>3} objects  {'ok' if not problems else f'{problems} problem(s)'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=SCRIPT_ROOT, help="repository root holding deploy/")
    parser.add_argument(
        "--only",
        action="append",
        choices=["k8s", "compose", "yaml", "consistency"],
        help="run only these groups of checks (repeatable; default all)",
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        help="render only this kustomize target, relative to deploy/k8s (repeatable)",
    )
    parser.add_argument("--kustomize", help="kustomize binary (default: $EVA_KUSTOMIZE, else the pinned one)")
    parser.add_argument("--k8s-version", default=K8S_VERSION, help=f"Kubernetes schema version (default {K8S_VERSION})")
    parser.add_argument("--list-rules", action="store_true", help="print the rules and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_rules:
        for rule, text in RULES.items():
            emit(f"{rule:<24} {text}")
        return 0
    root: Path = args.root.resolve()
    groups = set(args.only or ["k8s", "compose", "yaml", "consistency"])
    report = Report()
    out: list[str] = []
    rows = check_registry(root, report)
    if rows is not None:
        use_registry(rows)
    try:
        if "k8s" in groups:
            schemas = KubeSchemas(args.k8s_version)
            crds = crd_schemas.CustomResourceSchemas(SCRIPT_ROOT)
            check_k8s(root, report, kustomize_bin=args.kustomize, only_targets=args.target, schemas=schemas, out=out,
                      crds=crds)
            out.append(f"  custom resources: {crds.describe()}")
        if "compose" in groups:
            before = len(report.findings)
            check_compose(root, report)
            out.append(f"  compose                      {'ok' if len(report.findings) == before else 'problems'}")
        if "yaml" in groups:
            before = len(report.findings)
            check_yamllint(root, report)
            out.append(f"  yamllint                     {'ok' if len(report.findings) == before else 'problems'}")
        if "consistency" in groups:
            before = len(report.findings)
            check_dockerfile(root, report)
            check_consistency(root, report)
            check_strimzi_topics(root, report)
            out.append(f"  consistency                  {'ok' if len(report.findings) == before else 'problems'}")
    except ToolError as exc:
        emit(f"validate_manifests: cannot run: {exc}", error=True)
        return 2
    emit("validate_manifests: " + (out[0] if out and out[0].startswith("kustomize") else "offline checks"))
    for line in out:
        if not line.startswith("kustomize"):
            emit(line)
    for note in report.notes:
        emit(f"note: {note}")
    for finding in report.findings:
        emit(str(finding))
    if report.findings:
        emit(f"FAILED: {len(report.findings)} problem(s)")
        return 1
    emit("OK: every check passed")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())

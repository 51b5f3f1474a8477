"""The operators' schemas for the custom resources under deploy/k8s (scripts/validate_manifests.py, rule `crd-schema`).

Every rendered object that Kubernetes itself does not define is validated against its operator's published schema,
pinned in scripts/tools.py and fetched from a registry:
  * CloudNativePG (postgresql.cnpg.io) and prometheus-operator (monitoring.coreos.com): the CRDs in their Go
    modules. Each version's openAPIV3Schema is turned into a JSON schema (x-kubernetes-int-or-string,
    nullable, x-kubernetes-embedded-resource) and made strict: an object with declared properties refuses any other
    key unless it says x-kubernetes-preserve-unknown-fields, as the API server's pruning and kubectl's strict
    field validation would. CEL rules (x-kubernetes-validations) are not evaluated.
  * Strimzi (kafka.strimzi.io, core.strimzi.io): Strimzi publishes its CRDs only as release assets, so the
    validators compiled from them by the npm package @kubernetes-models/strimzi-kafka-operator run under Node
    (scripts/strimzi_validate.mjs). They check types, enums, required fields and ranges, and on top of them
    `strimzi_strict` refuses keys that the package's type declarations (generated from the same CRDs) do not know.
A custom resource of any other group is an error, unless its group is in ALLOWED_WITHOUT_SCHEMA with a reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tools
import yaml

# Groups whose resources may be rendered without a schema to check them against: group -> why.
ALLOWED_WITHOUT_SCHEMA: dict[str, str] = {}

CRD_FOLDERS: tuple[tuple[tools.GoSource, str], ...] = (
    (tools.CNPG_CRDS, "config/crd/bases"),
    (tools.PROMETHEUS_OPERATOR_CRDS, "example/prometheus-operator-crd"),
)
STRIMZI_GROUPS = frozenset({"kafka.strimzi.io", "core.strimzi.io"})
STRIMZI_RUNNER = Path(__file__).resolve().parent / "strimzi_validate.mjs"


class SchemaError(RuntimeError):
    """The schemas cannot be had here (no Go, npm or Node; a failed download)."""


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def to_json_schema(node: Any) -> Any:
    """A CRD's structural (OpenAPI v3) schema as a strict JSON schema."""
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-embedded-resource"):
        properties = out.setdefault("properties", {})
        for name in ("apiVersion", "kind", "metadata"):
            properties.setdefault(name, {})
    open_object = node.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in node
    if out.get("type") == "object" and "properties" in out and not open_object:
        out["additionalProperties"] = False
    return out


class _CrdLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1 reads a plain `=` (an enum value of prometheus-operator's relabelings) as the `value` tag."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_crds(files: Iterable[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON schema, for every served version of every CRD in the files."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in files:
        for crd in yaml.load_all(path.read_text(), Loader=_CrdLoader):
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec.get("versions") or []:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema and version.get("served", True):
                    found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = to_json_schema(schema)
    return found


def strimzi_module(package: Path, api_version: str, kind: str) -> Path:
    """kafka.strimzi.io/v1beta2 Kafka -> <package>/_schemas/KafkaStrimziIoV1beta2Kafka.js"""
    group, version = api_version.split("/", 1)
    prefix = "".join(part[:1].upper() + part[1:] for part in group.split("."))
    return package / "_schemas" / f"{prefix}{version[:1].upper()}{version[1:]}{kind}.js"


# --------------------------------------------------------------------------------------------- Strimzi, strict

_TS_MEMBER = re.compile(r'\s*(?:readonly\s+)?"?([A-Za-z0-9_.$@-]+)"?\??\s*:\s*')


def _ts_object(text: str, start: int) -> tuple[dict[str, Any] | None, int]:
    """Parse the inline object type `{ ... }` at text[start] ('{') of a kubernetes-models declaration: member ->
    its nested object type (dict), or None for a leaf / free-form map (`{ [key: string]: ... }`)."""
    members: dict[str, Any] = {}
    free_form = False
    i = start + 1
    while i < len(text):
        char = text[i]
        if char in " \t\r\n;,":
            i += 1
        elif char == "}":
            return (None if free_form or not members else members), i + 1  # `{}`: preserves unknown fields
        elif char == "[":  # an index signature: any key
            free_form = True
            i = _skip_type(text, text.index(":", text.index("]", i)) + 1)
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif text.startswith("//", i):
            i = text.index("\n", i)
        else:
            match = _TS_MEMBER.match(text, i)
            if match is None:
                raise ValueError(f"unexpected declaration text at {text[i:i + 40]!r}")
            i = match.end()
            nested: dict[str, Any] | None = None
            while text.startswith("Array<", i):
                i += len("Array<")
            if text[i] == "{":
                nested, i = _ts_object(text, i)
            members[match.group(1)] = nested
            i = _skip_type(text, i)
    raise ValueError("unterminated object type")


def _skip_type(text: str, i: int) -> int:
    """Past the rest of a member's type, up to its ';' (balancing brackets)."""
    depth = 0
    while i < len(text):
        char = text[i]
        if char in "{<([":
            depth += 1
        elif char in "}>)]":
            if depth == 0:
                if char == "}":  # the enclosing object ends
                    return i
            else:
                depth -= 1
        elif char == ";" and depth == 0:
            return i + 1
        i += 1
    return i


def strimzi_shape(declaration: str, kind: str) -> dict[str, Any]:
    """The members of `interface I<Kind> { ... }` in a kubernetes-models .d.ts file."""
    match = re.search(rf"interface I{re.escape(kind)}\s*{{", declaration)
    if match is None:
        raise ValueError(f"no interface I{kind}")
    shape, _ = _ts_object(declaration, match.end() - 1)
    return shape or {}


def unknown_keys(value: Any, shape: Mapping[str, Any] | None, path: str = "") -> Iterable[str]:
    if shape is None or not isinstance(value, Mapping):
        if isinstance(value, list) and shape is not None:
            for index, item in enumerate(value):
                yield from unknown_keys(item, shape, f"{path}[{index}]")
        return
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in shape:
            yield f"{where}: unknown field (not in the schema)"
        elif key != "metadata":
            yield from unknown_keys(item, shape[key], where)


# --------------------------------------------------------------------------------------------- the validator


class CustomResourceSchemas:
    """Validates the custom resources of a rendered target; the schemas load on first use."""

    def __init__(self, root: Path = tools.ROOT) -> None:
        self._root = root
        self._crds: dict[tuple[str, str], Any] | None = None
        self._groups: set[str] = set()
        self._strimzi: Path | None = None
        self._shapes: dict[tuple[str, str], dict[str, Any]] = {}

    def _validators(self) -> dict[tuple[str, str], Any]:
        if self._crds is None:
            import jsonschema  # type: ignore[import-untyped]

            files: list[Path] = []
            try:
                for source, folder in CRD_FOLDERS:
                    files += sorted((tools.go_source(source) / folder).glob("*.yaml"))
            except tools.ToolError as exc:
                raise SchemaError(str(exc)) from exc
            schemas = load_crds(files)
            self._groups = {group_of(api_version) for api_version, _ in schemas}
            self._crds = {key: jsonschema.Draft4Validator(schema) for key, schema in schemas.items()}
        return self._crds

    def _strimzi_package(self) -> Path:
        if self._strimzi is None:
            try:
                self._strimzi = tools.npm_install(tools.STRIMZI_SCHEMAS, self._root)
            except tools.ToolError as exc:
                raise SchemaError(str(exc)) from exc
        return self._strimzi

    def _strimzi_shape(self, api_version: str, kind: str) -> dict[str, Any] | None:
        key = (api_version, kind)
        if key not in self._shapes:
            group, version = api_version.split("/", 1)
            declaration = self._strimzi_package() / group / version / f"{kind}.d.ts"
            if not declaration.is_file():
                return None
            self._shapes[key] = strimzi_shape(declaration.read_text(), kind)
        return self._shapes[key]

    def describe(self) -> str:
        return (
            f"CloudNativePG {tools.CNPG_CRDS.version}, prometheus-operator {tools.PROMETHEUS_OPERATOR_CRDS.version} "
            f"CRDs; Strimzi via {tools.STRIMZI_SCHEMAS.package}@{tools.STRIMZI_SCHEMAS.version}"
        )

    def errors(self, objects: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        """One list of problems per object, in order."""
        results: list[list[str]] = [[] for _ in objects]
        strimzi: list[tuple[int, Path]] = []
        validators = self._validators()
        for index, obj in enumerate(objects):
            api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
            group = group_of(api_version)
            validator = validators.get((api_version, kind))
            if validator is not None:
                for error in sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path]):
                    path = ".".join(str(p) for p in error.absolute_path) or "(root)"
                    results[index].append(f"{path}: {error.message}")
            elif group in STRIMZI_GROUPS and strimzi_module(self._strimzi_package(), api_version, kind).is_file():
                strimzi.append((index, strimzi_module(self._strimzi_package(), api_version, kind)))
                shape = self._strimzi_shape(api_version, kind)
                if shape is not None:
                    results[index].extend(unknown_keys(obj, shape))
            elif group in ALLOWED_WITHOUT_SCHEMA:
                continue
            else:
                known = "a known group, but not this version or kind" if group in self._groups | STRIMZI_GROUPS \
                    else "no operator schema is pinned for this group"
                results[index].append(
                    f"no schema for {kind} {api_version} ({known}): pin its CRDs in scripts/crd_schemas.py, or put "
                    f"{group or api_version!r} on ALLOWED_WITHOUT_SCHEMA with a reason"
                )
        if strimzi:
            for (index, _), problems in zip(strimzi, self._run_strimzi(objects, strimzi), strict=True):
                results[index][:0] = problems
        return results

    def _run_strimzi(self, objects: Sequence[Mapping[str, Any]], items: list[tuple[int, Path]]) -> list[list[str]]:
        node = shutil.which("node")
        if node is None:
            raise SchemaError("there is no Node.js to run Strimzi's schema validators")
        payload = json.dumps([{"module": str(module), "object": objects[index]} for index, module in items])
        result = subprocess.run([node, str(STRIMZI_RUNNER)], input=payload, capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            raise SchemaError(f"{STRIMZI_RUNNER.name} failed:\n{result.stderr[-3000:]}")
        problems: list[list[str]] = json.loads(result.stdout)
        return problems

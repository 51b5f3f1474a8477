"""The production infrastructure's custom resources (CloudNativePG, Strimzi, prometheus-operator) against their
operators' schemas (scripts/crd_schemas.py), the KafkaTopics against eva_events.topics (scripts/strimzi_topics.py),
and what the prod overlay wires to them. Negative cases break a copy of deploy/ and run the validator on it."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from eva_events.topics import ALL_TOPICS
from eva_testing.scripts import load_script


def _manifest_tests() -> ModuleType:
    """test_manifests.py's fixtures and helpers (the deploy/ copy, the validator run), shared rather than copied."""
    spec = importlib.util.spec_from_file_location("eva_test_manifests", Path(__file__).with_name("test_manifests.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tm = _manifest_tests()
kustomize = tm.kustomize
tree = tm.tree
run, edit = tm.run, tm.edit
crd = load_script("crd_schemas")
topics_script = load_script("strimzi_topics")

PROD = ("--only", "k8s", "--target", "overlays/prod")
STRIMZI = "deploy/k8s/components/strimzi-kafka"
CNPG = "deploy/k8s/components/cloudnative-pg"


def errors(output: str, rule: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"ERROR [{rule}]")]


@pytest.fixture(scope="module")
def prod(kustomize: str) -> list[dict[str, Any]]:
    built = subprocess.run([kustomize, "build", str(tm.REPO / "deploy/k8s/overlays/prod")], capture_output=True,
                           text=True, check=True, timeout=180)
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


# ----------------------------------------------------------------------------------------------- the prod overlay


def test_prod_points_the_services_at_the_managed_infrastructure(prod: list[dict[str, Any]]) -> None:
    kafka = one(prod, "Kafka")
    plain = next(x for x in kafka["spec"]["kafka"]["listeners"] if not x["tls"])
    config = next(o for o in prod if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("eva-config"))
    # Strimzi names the bootstrap Service <cluster>-kafka-bootstrap
    assert config["data"]["EVA_KAFKA_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    pool = one(prod, "KafkaNodePool")
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    cluster = one(prod, "Cluster", "eva-postgres")
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    backup = one(prod, "ScheduledBackup")
    assert backup["spec"]["cluster"]["name"] == "eva-postgres"
    init = one(prod, "Job", "postgres-init")
    env = {e["name"]: e.get("value") for e in init["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGHOST"] == f"{cluster['metadata']['name']}-rw"
    redis = one(prod, "StatefulSet", "redis")
    assert "--maxmemory-policy noeviction" in " ".join(redis["spec"]["template"]["spec"]["containers"][0]["command"])
    assert one(prod, "Service", "redis")["spec"]["ports"][0]["port"] == 6379
    topics = [o for o in prod if o["kind"] == "KafkaTopic"]
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(spec.name for spec in ALL_TOPICS)
    assert all(t["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for t in topics)
    assert {o["metadata"]["namespace"] for o in [kafka, pool, cluster, backup, redis, *topics]} == {"eva"}


# ----------------------------------------------------------------------------------------------- crd-schema


def _kafka_unknown_field(root: Path) -> None:
    edit(root / STRIMZI / "kafka.yaml", "    version: 4.1.0\n", "    version: 4.1.0\n    replica: 3\n")


def _kafka_bad_listener(root: Path) -> None:
    edit(root / STRIMZI / "kafka.yaml", "        type: internal\n", "        type: intenral\n")


def _topic_unknown_field(root: Path) -> None:
    edit(root / STRIMZI / "topics.yaml", "  partitions: 6\n", "  partition: 6\n")


def _topic_wrong_type(root: Path) -> None:
    edit(root / STRIMZI / "topics.yaml", "  partitions: 6\n", "  partitions: six\n")


def _cluster_unknown_field(root: Path) -> None:
    edit(root / CNPG / "cluster.yaml", "  instances: 3\n", "  instance: 3\n")


def _cluster_nested_unknown_field(root: Path) -> None:
    edit(root / CNPG / "cluster.yaml", "        compression: gzip\n        maxParallel: 4\n",
         "        compresion: gzip\n        maxParallel: 4\n")


def _service_monitor(field: str) -> Any:
    """The prod overlay's ServiceMonitor/auth (components/monitoring) with its endpoint's `interval` spelled `field`."""
    def breaker(root: Path) -> None:
        edit(root / "deploy/k8s/components/monitoring/servicemonitors.yaml",
             "      app: auth\n  endpoints:\n    - port: http\n      path: /metrics\n      interval: 15s\n",
             f"      app: auth\n  endpoints:\n    - port: http\n      path: /metrics\n      {field}: 15s\n")
    return breaker


def _unknown_group(root: Path) -> None:
    (root / "deploy/k8s/overlays/prod/widget.yaml").write_text(
        "apiVersion: widgets.example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 1\n"
    )
    edit(root / "deploy/k8s/overlays/prod/kustomization.yaml", "  - namespace.yaml\n",
         "  - namespace.yaml\n  - widget.yaml\n")


CRD_CASES = {
    "Kafka unknown field": (_kafka_unknown_field, "Kafka/eva-kafka", "spec.kafka.replica: unknown field"),
    "Kafka listener type": (_kafka_bad_listener, "Kafka/eva-kafka", "spec.kafka.listeners.0.type: enum"),
    "KafkaTopic unknown field": (_topic_unknown_field, "KafkaTopic/wa.webhooks.v1", "spec.partition: unknown"),
    "KafkaTopic wrong type": (_topic_wrong_type, "KafkaTopic/wa.webhooks.v1", "spec.partitions: type"),
    "Cluster unknown field": (_cluster_unknown_field, "Cluster/eva-postgres", "'instance' was unexpected"),
    "Cluster nested unknown field": (
        _cluster_nested_unknown_field, "Cluster/eva-postgres", "wal: Additional properties are not allowed"
    ),
    "ServiceMonitor unknown field": (
        _service_monitor("intervall"), "ServiceMonitor/auth", "'intervall' was unexpected"
    ),
    "CR without a schema": (_unknown_group, "Widget/w", "no operator schema is pinned for this group"),
}


def test_the_valid_service_monitor_passes(tree: Path, kustomize: str) -> None:
    """The control for the ServiceMonitor case: the same resource with a real field is accepted."""
    _service_monitor("interval")(tree)
    code, output = run(tree, kustomize, *PROD)
    assert code == 0, output


@pytest.mark.parametrize("case", sorted(CRD_CASES))
def test_crd_schema_rule_fails(case: str, tree: Path, kustomize: str) -> None:
    breaker, obj, fragment = CRD_CASES[case]
    breaker(tree)
    code, output = run(tree, kustomize, *PROD)
    assert code == 1, output
    assert any(f"{obj}: " in line and fragment in line for line in errors(output, "crd-schema")), output


def test_an_allowed_group_needs_no_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = {"apiVersion": "widgets.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    schemas = crd.CustomResourceSchemas()
    assert schemas.errors([widget]) != [[]]
    monkeypatch.setitem(crd.ALLOWED_WITHOUT_SCHEMA, "widgets.example.com", "no schema published")
    assert schemas.errors([widget]) == [[]]


def test_structural_schemas_become_strict_json_schemas() -> None:
    schema = crd.to_json_schema({
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {}}},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
            "maybe": {"type": "string", "nullable": True},
        },
    })
    import jsonschema

    validator = jsonschema.Draft4Validator(schema)
    assert not list(validator.iter_errors({"port": 1, "free": {"b": 1}, "map": {"k": "v"}, "maybe": None}))
    assert not list(validator.iter_errors({"port": "http"}))
    assert [e.message for e in validator.iter_errors({"extra": 1})] == [
        "Additional properties are not allowed ('extra' was unexpected)"
    ]
    assert list(validator.iter_errors({"port": 1.5})) and list(validator.iter_errors({"map": {"k": 1}}))


def test_type_declarations_give_the_allowed_keys() -> None:
    shape = crd.strimzi_shape(
        'export interface IThing {\n  "spec"?: {\n    /** doc; with } */\n    "items"?: Array<{\n      "a"?: string;\n'
        '    }>;\n    "config"?: {};\n    "labels"?: {\n      [key: string]: string;\n    };\n  };\n}\n',
        "Thing",
    )
    assert shape == {"spec": {"items": {"a": None}, "config": None, "labels": None}}
    found = list(crd.unknown_keys({"spec": {"items": [{"a": "x", "b": 1}], "config": {"any": 1}, "lab": {}}}, shape))
    assert found == [
        "spec.items[0].b: unknown field (not in the schema)",
        "spec.lab: unknown field (not in the schema)",
    ]


# ----------------------------------------------------------------------------------------------- kafka-wiring


WIRING_CASES = {
    "bootstrap on the TLS listener": (
        "deploy/k8s/overlays/prod/kustomization.yaml",
        "EVA_KAFKA_BOOTSTRAP=eva-kafka-kafka-bootstrap:9092",
        "EVA_KAFKA_BOOTSTRAP=eva-kafka-kafka-bootstrap:9093",
        "EVA_KAFKA_BOOTSTRAP=eva-kafka-kafka-bootstrap:9093 is not the rendered Kafka's plain listener",
    ),
    "bootstrap elsewhere": (
        "deploy/k8s/overlays/prod/kustomization.yaml",
        "EVA_KAFKA_BOOTSTRAP=eva-kafka-kafka-bootstrap:9092",
        "EVA_KAFKA_BOOTSTRAP=kafka.example.com:9092",
        "EVA_KAFKA_BOOTSTRAP=kafka.example.com:9092 is not",
    ),
    "topic of another cluster": (
        f"{STRIMZI}/topics.yaml", "    strimzi.io/cluster: eva-kafka\n", "    strimzi.io/cluster: other\n",
        "KafkaTopic/wa.webhooks.v1: strimzi.io/cluster 'other': no such Kafka",
    ),
    "fewer brokers than replicas": (
        f"{STRIMZI}/kafka.yaml", "  replicas: 3\n", "  replicas: 2\n",
        "KafkaTopic/audit.events.v1: 3 replicas, 2 brokers",
    ),
    "min.insync.replicas as high as the replicas": (
        f"{STRIMZI}/topics.yaml", "    min.insync.replicas: 2\n", "    min.insync.replicas: 3\n",
        "KafkaTopic/wa.webhooks.v1: min.insync.replicas 3 leaves no replica to lose",
    ),
}


@pytest.mark.parametrize("case", sorted(WIRING_CASES))
def test_kafka_wiring_rule_fails(case: str, tree: Path, kustomize: str) -> None:
    file, old, new, message = WIRING_CASES[case]
    edit(tree / file, old, new)
    code, output = run(tree, kustomize, *PROD)
    assert code == 1, output
    assert any(message in line for line in errors(output, "kafka-wiring")), output


# ----------------------------------------------------------------------------------------------- KafkaTopic drift


def test_the_kafka_topics_are_generated_from_eva_events() -> None:
    assert (tm.REPO / topics_script.OUTPUT).read_text() == topics_script.render()
    assert topics_script.main(["--check"]) == 0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  partitions: 12\n", "  partitions: 6\n", "KafkaTopic messaging.events.v1 differs from eva_events.topics"),
        ("    retention.ms: 604800000\n", "    retention.ms: 86400000\n",
         "KafkaTopic wa.webhooks.v1 differs from eva_events.topics"),
        ("  topicName: audit.events.v1.dlq\n", "  topicName: audit.events.v2.dlq\n",
         "no KafkaTopic for audit.events.v1.dlq"),
        ("# GENERATED", "# generated", "differs from what scripts/strimzi_topics.py writes"),
    ],
)
def test_kafka_topic_drift_fails(tree: Path, old: str, new: str, message: str) -> None:
    edit(tree / STRIMZI / "topics.yaml", old, new)
    code, output = run(tree, "unused", "--only", "consistency")
    assert code == 1, output
    assert any(message in line for line in errors(output, "topics")), output
    assert topics_script.main(["--check", "--root", str(tree)]) == 1


def test_the_generator_writes_the_file(tmp_path: Path) -> None:
    (tmp_path / topics_script.OUTPUT).parent.mkdir(parents=True)
    assert topics_script.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / topics_script.OUTPUT).read_text() == topics_script.render()
    docs = list(yaml.safe_load_all(topics_script.render()))
    assert [(d["spec"]["topicName"], d["spec"]["partitions"], d["spec"]["config"]["retention.ms"]) for d in docs] == [
        (spec.name, spec.partitions, spec.retention_ms) for spec in ALL_TOPICS
    ]

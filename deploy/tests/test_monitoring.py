"""Eva's monitoring as code: the rules pass `promtool check rules` and their unit tests (`promtool test rules`), the
Compose Prometheus config passes `promtool check config`; every alert carries a severity, a summary, a description
and a runbook section in docs/monitoring.md, and has a firing and a quiet unit test; every metric a rule or a
dashboard panel reads is exported by the code (collected from the services' real Prometheus registries, so a
renamed metric fails here); the dashboard's queries are valid PromQL; Prometheus scrapes every deployable; the
Kubernetes PrometheusRule and ServiceMonitors are what scripts/monitoring_manifests.py generates, and select the
base Services by their labels and port names."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from eva_testing.scripts import load_script
from prometheus_client import REGISTRY

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "monitoring" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
DASHBOARD = REPO / "deploy" / "monitoring" / "grafana" / "dashboards" / "eva.json"
COMPONENT = REPO / "deploy" / "k8s" / "components" / "monitoring"
DOC = REPO / "docs" / "monitoring.md"
SEVERITIES = {"critical", "warning", "info"}
# Grafana's interval variables, given values so promtool can parse the panels' queries.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
METRIC = re.compile(r"\b(eva_[a-z0-9_]+)\b")
RECORDED = re.compile(r"\b(eva:[a-z0-9_:]+)\b")

tools = load_script("tools")
deployables = load_script("deployables")
manifests = load_script("monitoring_manifests")


@pytest.fixture(scope="module")
def promtool() -> str:
    """The pinned promtool (built with `go install` on first use)."""
    return str(tools.go_install(tools.PROMTOOL))


def run(promtool: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield from panel.get("panels", [])
        if panel["type"] != "row":
            yield panel


def panel_queries() -> list[str]:
    return [target["expr"] for panel in panels(dashboard()) for target in panel["targets"]]


def exported_metrics() -> set[str]:
    """The sample names the code exports: every module of the workspace that defines Prometheus metrics is imported,
    and the default registry lists them (counters as <name>_total, histograms as _bucket/_count/_sum)."""
    sources = [*REPO.glob("libs/*/src/**/*.py"), *REPO.glob("services/*/src/**/*.py"),
               *REPO.glob("gateway/src/**/*.py")]
    for source in sources:
        if "from prometheus_client import" in source.read_text():
            parts = source.relative_to(REPO).parts
            package = parts[parts.index("src") + 1:]
            importlib.import_module(".".join(package).removesuffix(".py"))
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def test_the_rules_pass_promtool_check_and_their_unit_tests(promtool: str) -> None:
    checked = run(promtool, "check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_the_compose_prometheus_config_passes_promtool_check_config(promtool: str) -> None:
    checked = run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_notices_a_broken_rule_and_a_failing_unit_test(promtool: str, tmp_path: Path) -> None:
    """The two checks above can fail: a rule that is not PromQL, and a threshold the unit tests do not expect."""
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text().replace('up{system="eva"} == 0', 'up{system="eva"} ==='))
    assert run(promtool, "check", "rules", str(tmp_path / "alerts.yml")).returncode != 0
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text().replace("eva_outbox_oldest_unsent_seconds) > 60",
                                                                    "eva_outbox_oldest_unsent_seconds) > 6000"))
    (tmp_path / "alerts.test.yml").write_text((PROMETHEUS / "alerts.test.yml").read_text())
    failed = run(promtool, "test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert failed.returncode != 0 and "OutboxBacklog" in failed.stdout + failed.stderr


def test_every_alert_has_a_severity_annotations_a_runbook_and_a_firing_and_a_quiet_test() -> None:
    headings = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in DOC.read_text().splitlines() if line.startswith("#")}
    cases = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in cases for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in cases for case in test["alert_rule_test"] if not case["exp_alerts"]}
    assert alerts(), "no alerts"
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), name
        runbook = rule["annotations"].get("runbook_url", "")
        assert runbook == f"docs/monitoring.md#{name.lower()}", name
        assert name.lower() in headings, f"docs/monitoring.md has no section {name}"
        assert name in fired, f"{name} has no unit test where it fires"
        assert name in quiet, f"{name} has no unit test where it stays quiet"


def test_every_metric_the_rules_and_the_dashboard_read_is_exported_by_the_code() -> None:
    exported = exported_metrics()
    assert {"eva_kafka_consumer_lag", "eva_outbox_unsent", "eva_messaging_token_refused_total"} <= exported
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    texts = {"alerts.yml": [rule["expr"] for rule in rules()], "eva.json": panel_queries()}
    for where, expressions in texts.items():
        for expression in expressions:
            missing = set(METRIC.findall(expression)) - exported
            assert not missing, f"{where}: {expression!r} reads {sorted(missing)}, which no code exports"
            unknown = set(RECORDED.findall(expression)) - recorded
            assert not unknown, f"{where}: {expression!r} reads {sorted(unknown)}, which no rule records"


def test_the_dashboard_is_provisioned_with_a_datasource_variable_and_valid_queries(
        promtool: str, tmp_path: Path) -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in panels(board):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"]), panel["title"]
    queries = panel_queries()
    # what the dashboard must show: ingest, consumer lag, processing time, sends and Meta codes, the governor,
    # sockets, API latency and errors by route, the outbox backlog, the dead letters
    for needed in ("eva_webhook_deliveries_total", "eva_kafka_consumer_lag", "eva_kafka_handle_seconds_bucket",
                   'outcome=~"failed|retry"', "eva_messaging_governor_wait_seconds_bucket",
                   "eva_gateway_sockets_connected", "le, job, route", "by (job, route, status)", "eva_outbox_unsent",
                   ".dlq"):
        assert any(needed in query for query in queries), f"no panel reads {needed}"
    substituted = []
    for query in queries:
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        substituted.append(query)
    as_rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": query} for n, query in enumerate(substituted)]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(as_rules))
    checked = run(promtool, "check", "rules", str(tmp_path / "dashboard.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    provisioning = REPO / "deploy" / "monitoring" / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "eva.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_every_deployable_and_compose_mounts_what_it_reads() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    for item in deployables.load():
        if item.dev_only:
            assert item.name not in jobs
            continue
        assert jobs.get(item.name) == [{"targets": [f"{item.name}:{item.http['container']}"],
                                        "labels": {"system": "eva"}}], item.name
    assert config["rule_files"] == ["alerts.yml"]
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "compose.yml").read_text())["services"]
    for service in ("prometheus", "grafana"):
        assert not compose[service].get("ports"), f"{service} must not publish a port (the edge routes to it)"
        for volume in compose[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("../"):
                assert (REPO / "deploy" / "compose" / source).exists(), volume
    mounted = {volume.split(":")[1] for volume in compose["prometheus"]["volumes"]}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounted
    # the Prometheus image is the release promtool is built from (v3.N.P is the Go module version v0.3NN.P)
    pinned = re.fullmatch(r"v0\.(\d)(\d\d)\.(\d+)", tools.PROMTOOL.version)
    assert pinned is not None
    major, minor, patch = pinned.groups()
    assert compose["prometheus"]["image"] == f"prom/prometheus:v{major}.{int(minor)}.{patch}"


def test_the_kubernetes_component_is_generated_from_the_rules_and_the_registry() -> None:
    for path, text in manifests.rendered().items():
        assert path.read_text() == text, f"{path.name} is stale: run python3 scripts/monitoring_manifests.py"
    rule = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]
    monitors = {doc["metadata"]["name"]: doc
                for doc in yaml.safe_load_all((COMPONENT / "servicemonitors.yaml").read_text())}
    services = {}
    for base in (REPO / "deploy" / "k8s" / "base").glob("*.yaml"):
        for doc in yaml.safe_load_all(base.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Service":
                services[doc["metadata"]["name"]] = doc
    deployed = {item.name for item in deployables.load() if not item.dev_only}
    assert set(monitors) == deployed
    for name, monitor in monitors.items():
        service = services[name]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items(), name
        ports = {port["name"] for port in service["spec"]["ports"]}
        assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["http"] and "http" in ports
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == name  # job=<deployable>
    for kustomization in ("deploy/k8s/overlays/prod", "deploy/k8s/tests/all-components"):
        components = yaml.safe_load((REPO / kustomization / "kustomization.yaml").read_text())["components"]
        assert "../../components/monitoring" in components, kustomization


def test_the_generator_reports_a_stale_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "monitoring"
    copy.mkdir()
    for path in COMPONENT.iterdir():
        (copy / path.name).write_text(path.read_text())
    monkeypatch.setattr(manifests, "COMPONENT", copy)
    assert manifests.main(["--check"]) == 0
    (copy / "prometheusrule.yaml").write_text((copy / "prometheusrule.yaml").read_text().replace("> 60", "> 61"))
    assert manifests.main(["--check"]) == 1

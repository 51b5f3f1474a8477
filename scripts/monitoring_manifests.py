#!/usr/bin/env python3
"""The Kubernetes monitoring component (deploy/k8s/components/monitoring), generated from the one source of each:

  * prometheusrule.yaml: a PrometheusRule carrying deploy/monitoring/prometheus/alerts.yml's groups, verbatim;
  * servicemonitors.yaml: a ServiceMonitor per deployed deployable of deploy/deployables.toml (not the dev-only
    ones), selecting its base Service by `app: <name>` and scraping its `http` port's /metrics, with the labels the
    rules expect (`job=<name>` from the Service's `app` label, `system="eva"`).

    python3 scripts/monitoring_manifests.py           # rewrite both files
    python3 scripts/monitoring_manifests.py --check   # exit 1 when either is out of date (tests, CI)

Stdlib only (the rules are copied as text, indented under `spec:`, so their comments survive).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deployables  # noqa: E402

ROOT = deployables.ROOT
ALERTS = ROOT / "deploy" / "monitoring" / "prometheus" / "alerts.yml"
COMPONENT = ROOT / "deploy" / "k8s" / "components" / "monitoring"
SCRAPE_INTERVAL = "15s"
# The Prometheus (prometheus-operator) that watches Eva must select these: serviceMonitorSelector and ruleSelector
# matching this label (docs/monitoring.md, "Kubernetes").
SELECTOR_LABEL = ("eva.monitoring/scrape", "eva")
GENERATED = "# Generated from {source} by scripts/monitoring_manifests.py: edit the source and run it.\n"


def prometheus_rule(alerts: str) -> str:
    body = alerts.split("\ngroups:\n", 1)
    if len(body) != 2:
        raise ValueError(f"{ALERTS.relative_to(ROOT)} has no top-level `groups:`")
    groups = "".join(f"  {line}" if line.strip() else line for line in ("groups:\n" + body[1]).splitlines(True))
    return (GENERATED.format(source="deploy/monitoring/prometheus/alerts.yml")
            + "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: eva\n  labels:\n"
            + f"    {SELECTOR_LABEL[0]}: {SELECTOR_LABEL[1]}\nspec:\n" + groups)


def service_monitors(items: tuple[deployables.Deployable, ...]) -> str:
    documents = []
    for item in items:
        if item.dev_only:
            continue
        documents.append(
            "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n"
            f"  name: {item.name}\n  labels:\n    app: {item.name}\n    {SELECTOR_LABEL[0]}: {SELECTOR_LABEL[1]}\n"
            f"spec:\n  jobLabel: app\n  selector:\n    matchLabels:\n      app: {item.name}\n  endpoints:\n"
            f"    - port: http\n      path: /metrics\n      interval: {SCRAPE_INTERVAL}\n      relabelings:\n"
            "        - targetLabel: system\n          replacement: eva\n")
    return GENERATED.format(source="deploy/deployables.toml") + "---\n".join(documents)


def rendered() -> dict[Path, str]:
    return {COMPONENT / "prometheusrule.yaml": prometheus_rule(ALERTS.read_text()),
            COMPONENT / "servicemonitors.yaml": service_monitors(deployables.load())}


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        if path.is_file() and path.read_text() == text:
            continue
        if args.check:
            stale.append(shown(path))
        else:
            path.write_text(text)
            sys.stdout.write(f"wrote {shown(path)}\n")
    if stale:
        sys.stderr.write(f"out of date (run python3 scripts/monitoring_manifests.py): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The registry of deployables (deploy/deployables.toml): it matches the tree, and what it refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import deployables
import pytest

ROOT = Path(__file__).resolve().parents[2]

ROW = """
[[deployable]]
name = "{name}"
package = "eva-{name}"
module = "{module}"
directory = "services/{name}"
http = {{ dev = {dev}, test = 1{dev}, container = {dev} }}
"""


def test_the_registry_matches_the_workspace() -> None:
    items = deployables.load()
    assert deployables.workspace_problems(items) == []
    assert {"auth", "gateway", "simulator"} <= {d.name for d in items}


def test_every_service_folder_has_a_row() -> None:
    registered = {d.directory for d in deployables.load()}
    folders = {f"services/{path.parent.name}" for path in (ROOT / "services").glob("*/pyproject.toml")}
    assert folders - registered == set()


def test_peers_are_found_through_the_grpc_services_of_the_registry() -> None:
    targets = {d.grpc_target_env for d in deployables.load() if d.grpc}
    assert targets == {"EVA_AUTH_GRPC_TARGET", "EVA_TENANT_GRPC_TARGET", "EVA_CONVERSATION_GRPC_TARGET",
                       "EVA_MESSAGING_GRPC_TARGET", "EVA_N8N_INTEGRATION_GRPC_TARGET"}


def test_two_rows_on_one_port_are_refused() -> None:
    text = ROW.format(name="billing", module="billing_service", dev=8120) + ROW.format(
        name="invoicing", module="invoicing_service", dev=8120)
    with pytest.raises(deployables.RegistryError, match="dev port 8120 is used by billing and invoicing"):
        deployables.parse(text)


def test_a_replica_port_clashing_with_another_row_is_refused() -> None:
    text = ROW.format(name="billing", module="billing_service", dev=8120) + "replicas = { dev = 2 }\n" + ROW.format(
        name="invoicing", module="invoicing_service", dev=8130)
    with pytest.raises(deployables.RegistryError, match="dev port 8130"):
        deployables.parse(text)


@pytest.mark.parametrize(("change", "message"), [
    (lambda row: row.replace('module = "billing_service"\n', ""), "module is required"),
    (lambda row: row + 'colour = "blue"\n', "unknown field"),
    (lambda row: row.replace("container = 8120", "container = 8120, staging = 1"), "http needs a port"),
    (lambda row: row.replace("dev = 8120", "dev = 40000"), "not a port below 32768"),
    (lambda row: row + 'database = "billing"\n', "database must match"),
])
def test_malformed_rows_are_refused(change: object, message: str) -> None:
    row = ROW.format(name="billing", module="billing_service", dev=8120)
    assert callable(change)
    with pytest.raises(deployables.RegistryError, match=message):
        deployables.parse(change(row))


def test_a_row_without_its_folder_is_a_workspace_problem(tmp_path: Path) -> None:
    items = deployables.parse(ROW.format(name="billing", module="billing_service", dev=8120))
    assert deployables.workspace_problems(items, tmp_path) == ["billing: no services/billing/pyproject.toml"]


def test_docker_args_name_the_package_module_and_folder() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "deployables.py"), "docker-args", "gateway"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["--build-arg=SERVICE=gateway", "--build-arg=PACKAGE=eva-gateway",
                                     "--build-arg=MODULE=gateway", "--build-arg=DIRECTORY=gateway",
                                     "--build-arg=HTTP_PORT=3001"]


def test_the_cli_lists_what_lint_and_infra_read() -> None:
    def listed(command: str) -> list[str]:
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "deployables.py"), command],
                              capture_output=True, text=True, check=True).stdout.split()

    items = deployables.load()
    assert listed("modules") == [d.module for d in items]
    assert listed("databases") == [d.database for d in items if d.database]


def test_the_ports_table_of_the_conventions_is_the_registry() -> None:
    """docs/conventions.md lists the local ports for people; the registry is what runs. They must agree."""
    text = (ROOT / "docs" / "conventions.md").read_text()
    section = text.split("## Ports", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, tuple[int | None, ...]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1][:1].isdigit():
            documented[cells[0]] = tuple(int(c.split()[0]) if c[:1].isdigit() else None for c in cells[1:])
    expected = {d.name: (d.http_port("dev"), d.grpc_port("dev"), d.http_port("test"), d.grpc_port("test"))
                for d in deployables.load()}
    assert documented == expected


def test_a_grpc_service_builds_with_its_container_grpc_port() -> None:
    args = deployables.by_name("auth").docker_args()
    assert (args["HTTP_PORT"], args["GRPC_PORT"]) == ("8101", "50051")
    assert "GRPC_PORT" not in deployables.by_name("realtime").docker_args()

"""scripts/validate_manifests.py over the real deploy/ tree, and proof that each rule can fail.

The negative tests copy deploy/ into tmp_path, break one thing, run the validator on the copy (only the check
group concerned, and only the base kustomize target where that suffices, to stay fast) and assert that the
problem is reported under its rule.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from eva_testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "validate_manifests.py"


vm = load_script("validate_manifests")


@pytest.fixture(scope="session")
def kustomize() -> str:
    """The pinned kustomize (installed with `go install` on first use, as the validator does)."""
    return str(vm.find_kustomize(None))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A writable copy of deploy/ under tmp_path (the validator's --root)."""
    deploy = REPO / "deploy"

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {"__pycache__", ".pytest_cache"} | ({"tests"} if Path(directory) == deploy else set())
        return skipped & set(names)

    shutil.copytree(deploy, tmp_path / "deploy", ignore=ignore)
    return tmp_path


def run(root: Path, kustomize: str, *args: str) -> tuple[int, str]:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--kustomize", kustomize, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return completed.returncode, completed.stdout + completed.stderr


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


# ----------------------------------------------------------------------------------------------- the real tree


def test_real_tree_passes(kustomize: str) -> None:
    code, output = run(REPO, kustomize)
    assert code == 0, output
    assert "OK: every check passed" in output
    for target in ("base", "overlays/dev", "overlays/prod", "tests/all-components"):
        assert re.search(rf"k8s {re.escape(target)}\s+\d+ objects\s+ok", output), output


def test_list_rules_names_every_rule() -> None:
    code, output = run(REPO, "unused", "--list-rules")
    assert code == 0
    for rule in ("resources", "security-context", "image", "service-ports", "literal-secret", "schema"):
        assert rule in output


# ----------------------------------------------------------------------------------------------- negative cases

Breaker = Callable[[Path], None]
BASE = ("--only", "k8s", "--target", "base")


def _no_limits(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/auth.yaml",
        """            limits:
              cpu: 500m
              memory: 384Mi
""",
        "",
    )


def _privileged(root: Path) -> None:
    path = root / "deploy/k8s/base/gateway.yaml"
    text = path.read_text()
    assert text.count("privileged: false") == 1
    path.write_text(text.replace("privileged: false", "privileged: true"))


def _unknown_image(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/tenant.yaml",
        "image: eva/tenant\n          ports:",
        "image: nginx:1.27\n          ports:",
    )


def _unknown_eva_image(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/tenant.yaml",
        "image: eva/tenant\n          ports:",
        "image: eva/billing\n          ports:",
    )


def _backup_image_in_a_deployment(root: Path) -> None:
    """eva/backup (deploy/backup/Dockerfile) runs in Jobs and CronJobs only, never as a deployable."""
    edit(
        root / "deploy/k8s/base/tenant.yaml",
        "image: eva/tenant\n          ports:",
        "image: eva/backup\n          ports:",
    )


def _literal_secret_env(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/messaging.yaml",
        """            - name: EVA_SERVICE_CLIENT_SECRET
              valueFrom:
                secretKeyRef:
                  name: messaging-secrets
                  key: EVA_SERVICE_CLIENT_SECRET
""",
        """            - name: EVA_SERVICE_CLIENT_SECRET
              value: hunter2-hunter2-hunter2
""",
    )


def _literal_secret_object(root: Path) -> None:
    path = root / "deploy/k8s/base/realtime.yaml"
    path.write_text(
        path.read_text()
        + """---
apiVersion: v1
kind: Secret
metadata:
  name: realtime-secrets
stringData:
  EVA_SERVICE_CLIENT_SECRET: hunter2-hunter2-hunter2
"""
    )


def _password_in_config(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/kustomization.yaml",
        "      - EVA_KAFKA_BOOTSTRAP=kafka:9092\n",
        "      - EVA_KAFKA_BOOTSTRAP=kafka:9092\n      - EVA_CACHE=redis://:s3cret-value@redis:6379/0\n",
    )


def _secret_generator_in_base(root: Path) -> None:
    path = root / "deploy/k8s/base/kustomization.yaml"
    path.write_text(
        path.read_text()
        + """
secretGenerator:
  - name: gateway-secrets
    literals:
      - EVA_SERVICE_CLIENT_SECRET=hunter2-hunter2-hunter2
"""
    )


def _bad_port_name(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/conversation.yaml",
        "    - name: grpc\n      port: 50053\n      targetPort: grpc",
        "    - name: rpc\n      port: 50053\n      targetPort: grpc",
    )


def _no_readiness(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/realtime.yaml",
        """          readinessProbe:
            httpGet:
              path: /readyz
""",
        """          startupProbe2:
            httpGet:
              path: /readyz
""",
    )


def _http_startup_for_grpc(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/auth.yaml",
        """          startupProbe:
            grpc:
              port: 50051
""",
        """          startupProbe:
            tcpSocket:
              port: 50051
""",
    )


def _writable_root(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/n8n-integration.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
        count=2,
    )


def _root_user(root: Path) -> None:
    edit(root / "deploy/k8s/base/webhook-ingest.yaml", "runAsUser: 1000", "runAsUser: 0")


def _owner_url_in_app(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/tenant.yaml",
        """            - name: EVA_DATABASE_URL
              valueFrom:""",
        """            - name: EVA_MIGRATION_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: tenant-secrets
                  key: EVA_MIGRATION_DATABASE_URL
            - name: EVA_DATABASE_URL
              valueFrom:""",
    )


def _short_grace(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/conversation.yaml",
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds: 5",
    )


def _schema_typo(root: Path) -> None:
    edit(
        root / "deploy/k8s/base/gateway.yaml",
        "      serviceAccountName: gateway",
        "      serviceAccountName: gateway\n      serviceAcountName: gateway",
    )


def _no_affinity(root: Path) -> None:
    edit(root / "deploy/k8s/base/gateway.yaml", "  sessionAffinity: ClientIP\n", "")
    edit(
        root / "deploy/k8s/base/gateway.yaml",
        """  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 10800
""",
        "",
    )


K8S_CASES: dict[str, tuple[Breaker, str, str]] = {
    "container without limits": (_no_limits, "resources", "Deployment/auth container server: no limits"),
    "privileged container": (_privileged, "security-context", "privileged container"),
    "unknown image": (_unknown_image, "image", "nginx:1.27"),
    "unknown eva image": (_unknown_eva_image, "image", "no deployable named 'billing'"),
    "backup image in a deployment": (_backup_image_in_a_deployment, "image", "no deployable named 'backup'"),
    "literal secret in env": (_literal_secret_env, "literal-secret", "EVA_SERVICE_CLIENT_SECRET has a literal value"),
    "secret object in base": (_literal_secret_object, "literal-secret", "Secret/realtime-secrets"),
    "password in config": (_password_in_config, "literal-secret", "URL with a password"),
    "secretGenerator in base": (_secret_generator_in_base, "secret-generator", "only the dev overlay"),
    "service port name": (_bad_port_name, "service-ports", "named 'rpc'"),
    "missing readiness probe": (_no_readiness, "probes", "no readinessProbe"),
    "grpc service without grpc probe": (_http_startup_for_grpc, "probes", "native grpc probe on 50051"),
    "writable root filesystem": (_writable_root, "security-context", "readOnlyRootFilesystem is not true"),
    "runs as root": (_root_user, "security-context", "no non-zero runAsUser"),
    "owner URL in the app": (_owner_url_in_app, "owner-credentials", "migrate initContainer only"),
    "grace too short": (_short_grace, "shape", "terminationGracePeriodSeconds 5"),
    "schema typo": (_schema_typo, "schema", "serviceAcountName"),
    "gateway without affinity": (_no_affinity, "gateway-affinity", "ClientIP"),
}


@pytest.mark.parametrize("case", sorted(K8S_CASES))
def test_k8s_rule_fails(case: str, tree: Path, kustomize: str) -> None:
    breaker, rule, fragment = K8S_CASES[case]
    breaker(tree)
    code, output = run(tree, kustomize, *BASE)
    assert code == 1, output
    reported = [line for line in output.splitlines() if line.startswith(f"ERROR [{rule}]")]
    assert any(fragment in line for line in reported), output


def test_dev_secret_without_marker_fails(tree: Path, kustomize: str) -> None:
    edit(
        tree / "deploy/k8s/overlays/dev/kustomization.yaml",
        """  - name: gateway-secrets
    envs:
      - secrets/gateway.env
    options:
      annotations:
        eva.io/dev-only: "true"
""",
        """  - name: gateway-secrets
    envs:
      - secrets/gateway.env
""",
    )
    code, output = run(tree, kustomize, "--only", "k8s", "--target", "overlays/dev")
    assert code == 1, output
    assert "ERROR [secret-generator] deploy/k8s/overlays/dev: secretGenerator gateway-secrets" in output
    assert re.search(
        r"ERROR \[literal-secret\] deploy/k8s/overlays/dev: Secret/gateway-secrets-\w+: dev Secrets", output
    )


def test_simulator_in_prod_fails(tree: Path, kustomize: str) -> None:
    shutil.copy(tree / "deploy/k8s/overlays/dev/simulator.yaml", tree / "deploy/k8s/overlays/prod/simulator.yaml")
    edit(
        tree / "deploy/k8s/overlays/prod/kustomization.yaml", "  - ../../base\n", "  - ../../base\n  - simulator.yaml\n"
    )
    code, output = run(tree, kustomize, "--only", "k8s", "--target", "overlays/prod")
    assert code == 1, output
    assert "ERROR [environment] deploy/k8s/overlays/prod: the simulator is dev-only" in output


def test_unused_component_fails(tree: Path, kustomize: str) -> None:
    extra = tree / "deploy/k8s/components/orphan"
    extra.mkdir()
    (extra / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n")
    code, output = run(tree, kustomize, *BASE)
    assert code == 1, output
    assert "ERROR [components] deploy/k8s/components/orphan: no target uses this Component" in output


def test_broken_kustomization_fails(tree: Path, kustomize: str) -> None:
    edit(tree / "deploy/k8s/base/kustomization.yaml", "  - realtime.yaml\n", "  - realtime.yaml\n  - missing.yaml\n")
    code, output = run(tree, kustomize, *BASE)
    assert code == 1, output
    assert "ERROR [kustomize-build] deploy/k8s/base:" in output


# ----------------------------------------------------------------------------------------------- compose


def _compose_literal_secret(root: Path) -> None:
    edit(
        root / "deploy/compose/compose.yml",
        "EVA_SERVICE_CLIENT_SECRET: ${EVA_CLIENT_SECRET_REALTIME:?Variable not set}",
        "EVA_SERVICE_CLIENT_SECRET: hunter2-hunter2-hunter2",
    )


def _compose_literal_password_url(root: Path) -> None:
    edit(
        root / "deploy/compose/compose.yml",
        "EVA_REDIS_URL: redis://:${EVA_REDIS_PASSWORD:?Variable not set}@redis:6379/0",
        "EVA_REDIS_URL: redis://:hunter2@redis:6379/0",
    )


def _compose_extra_port(root: Path) -> None:
    edit(
        root / "deploy/compose/compose.yml",
        "  auth:\n    <<: *eva-service\n",
        '  auth:\n    <<: *eva-service\n    ports:\n      - "50051:50051"\n',
    )


def _compose_public_port(root: Path) -> None:
    edit(
        root / "deploy/compose/compose.yml",
        "    image: eva/gateway:${EVA_IMAGE_TAG:?Variable not set}\n",
        '    image: eva/gateway:${EVA_IMAGE_TAG:?Variable not set}\n    ports:\n      - "3001:3001"\n',
    )


def _compose_edge_without_http3(root: Path) -> None:
    edit(root / "deploy/compose/compose.yml", '      - "443:443/udp"\n', "")


def _compose_edge_unpinned(root: Path) -> None:
    edit(root / "deploy/compose/compose.yml", f"image: {vm.edge_image()}", "image: caddy:latest")


def _compose_edge_certificates_lost(root: Path) -> None:
    edit(root / "deploy/compose/compose.yml", "      - edge-data:/data\n", "")


def _compose_gateway_trusts_anybody(root: Path) -> None:
    edit(root / "deploy/compose/compose.yml", "EVA_TRUSTED_PROXIES: ${EVA_EDGE_ADDRESS:-10.254.254.254}",
         "EVA_TRUSTED_PROXIES: 0.0.0.0/0")


def _compose_broken_extra_layer(root: Path) -> None:
    (root / "deploy/compose/compose.extra.yml").write_text(
        "services:\n  extra:\n    image: busybox:1.37\n    restart_policy: always\n"
    )


def _caddyfile_invalid(root: Path) -> None:
    edit(root / "deploy/compose/edge/Caddyfile", "lb_policy cookie eva_lb", "lb_policy sticky eva_lb")


def _caddyfile_wrong_port(root: Path) -> None:
    edit(root / "deploy/compose/edge/Caddyfile", "{$EVA_EDGE_INGEST:webhook-ingest:3002}",
         "{$EVA_EDGE_INGEST:webhook-ingest:3020}")


def _caddyfile_unformatted(root: Path) -> None:
    edit(root / "deploy/compose/edge/Caddyfile", "\t\t\tmax_size 3MiB\n", "  max_size 3MiB\n")


def _compose_no_healthcheck(root: Path) -> None:
    edit(
        root / "deploy/compose/compose.yml",
        """    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q -U postgres -d postgres -h 127.0.0.1"]
      interval: 5s
      timeout: 5s
      retries: 12
      start_period: 20s
""",
        "",
    )


def _compose_unlisted_variable(root: Path) -> None:
    edit(
        root / "deploy/compose/compose.yml",
        "EVA_FRONTEND_URL: ${EVA_FRONTEND_URL:?Variable not set}",
        "EVA_FRONTEND_URL: ${EVA_PUBLIC_ORIGIN:?Variable not set}",
    )


def _compose_schema(root: Path) -> None:
    edit(root / "deploy/compose/compose.yml", "  stop_grace_period: 30s", "  stop_grace_periodd: 30s")


def _compose_no_migrate_wait(root: Path) -> None:
    edit(
        root / "deploy/compose/compose.yml",
        """      auth-migrate:
        condition: service_completed_successfully""",
        """      auth-migrate:
        condition: service_started""",
    )


def _compose_eviction(root: Path) -> None:
    edit(root / "deploy/compose/compose.yml", "--maxmemory-policy noeviction", "--maxmemory-policy allkeys-lru")


def _compose_prod_env_in_dev(root: Path) -> None:
    edit(root / "deploy/compose/compose.override.yml", "  EVA_WHATSAPP_GRAPH_URL: http://simulator:3010\n", "")


def _compose_build_args_drift(root: Path) -> None:
    edit(root / "deploy/compose/compose.override.yml", "    MODULE: auth_service\n", "    MODULE: auth_svc\n")


def _compose_own_dockerfile(root: Path) -> None:
    edit(
        root / "deploy/compose/compose.override.yml",
        "x-build-gateway: &build-gateway\n  context: ../..\n  dockerfile: deploy/Dockerfile\n",
        "x-build-gateway: &build-gateway\n  context: ../..\n  dockerfile: gateway/Dockerfile\n",
    )


def _registry_row_without_manifests(root: Path) -> None:
    path = root / "deploy/deployables.toml"
    path.write_text(path.read_text() + BILLING_ROW)


BILLING_ROW = """
[[deployable]]
name = "billing"
package = "eva-billing"
module = "billing_service"
directory = "services/billing"
http = { dev = 8106, test = 18106, container = 8106 }
"""

COMPOSE_CASES: dict[str, tuple[Breaker, str, str]] = {
    "build args differ from the registry": (_compose_build_args_drift, "compose-build", "auth_svc"),
    "a Dockerfile of its own": (_compose_own_dockerfile, "compose-build", "services.gateway.build"),
    "a registry row without its compose service": (_registry_row_without_manifests, "compose-services",
                                                   "no service billing"),
    "literal secret": (_compose_literal_secret, "compose-literal-secret", "services.realtime.environment"),
    "literal password in URL": (_compose_literal_password_url, "compose-literal-secret", "literal password"),
    "extra published port": (_compose_extra_port, "compose-ports", "publishes 50051:50051"),
    "a public deployable publishes its port": (_compose_public_port, "compose-ports", "publishes 3001:3001"),
    "edge without HTTP/3": (_compose_edge_without_http3, "compose-ports", "must publish 443:443/udp"),
    "edge image not the tested Caddy": (_compose_edge_unpinned, "compose-edge", "caddy:latest"),
    "edge certificates on no volume": (_compose_edge_certificates_lost, "compose-edge", "/data"),
    "gateway believes any X-Forwarded-For": (_compose_gateway_trusts_anybody, "compose-edge", "services.gateway"),
    "Caddyfile invalid": (_caddyfile_invalid, "compose-edge", "caddy validate"),
    "an extra compose layer is schema-checked too": (_compose_broken_extra_layer, "compose-schema",
                                                      "compose.extra.yml"),
    "Caddyfile not formatted": (_caddyfile_unformatted, "compose-edge", "caddy fmt"),
    "Caddyfile proxies to a wrong port": (_caddyfile_wrong_port, "compose-edge", "webhook-ingest:3020"),
    "infra without healthcheck": (_compose_no_healthcheck, "compose-health", "services.postgres"),
    "variable missing from .env.example": (_compose_unlisted_variable, "compose-env", "EVA_PUBLIC_ORIGIN"),
    "schema": (_compose_schema, "compose-schema", "stop_grace_periodd"),
    "app not waiting for its migration": (_compose_no_migrate_wait, "compose-depends-on", "auth-migrate"),
    "redis evicts": (_compose_eviction, "redis-config", "noeviction"),
    "dev points at Meta": (_compose_prod_env_in_dev, "compose-dev", "EVA_WHATSAPP_GRAPH_URL"),
}


@pytest.mark.parametrize("case", sorted(COMPOSE_CASES))
def test_compose_rule_fails(case: str, tree: Path) -> None:
    breaker, rule, fragment = COMPOSE_CASES[case]
    breaker(tree)
    code, output = run(tree, "unused", "--only", "compose")
    assert code == 1, output
    reported = [line for line in output.splitlines() if line.startswith(f"ERROR [{rule}]")]
    assert any(fragment in line for line in reported), output


# ----------------------------------------------------------------------------------------------- yaml + copies


def test_yamllint_fails(tree: Path) -> None:
    edit(tree / "deploy/k8s/base/auth.yaml", "kind: Deployment\n", "kind: Deployment   \n")
    code, output = run(tree, "unused", "--only", "yaml")
    assert code == 1, output
    assert re.search(r"ERROR \[yamllint\] deploy/k8s/base/auth\.yaml:\d+:\d+: trailing spaces", output), output


def test_topic_drift_fails(tree: Path) -> None:
    edit(tree / "deploy/k8s/components/kafka-topics/create-topics.sh", "create audit.events.v1.dlq 1 1048576\n", "")
    edit(tree / "deploy/compose/init/kafka/create-topics.sh", "create audit.events.v1.dlq 1 1048576\n", "")
    code, output = run(tree, "unused", "--only", "consistency")
    assert code == 1, output
    assert "missing `create audit.events.v1.dlq 1 1048576`" in output


def test_a_registry_row_needs_its_kubernetes_objects(tree: Path, kustomize: str) -> None:
    _registry_row_without_manifests(tree)
    code, output = run(tree, kustomize, *BASE)
    assert code == 1, output
    assert re.search(r"ERROR \[completeness\] .*billing", output), output


def test_a_malformed_registry_fails(tree: Path) -> None:
    edit(tree / "deploy/deployables.toml", 'module = "tenant_service"\n', 'module = "auth_service"\n')
    code, output = run(tree, "unused", "--only", "consistency")
    assert code == 1, output
    assert "ERROR [registry] deploy/deployables.toml: module used twice: auth_service" in output


def test_the_dockerfile_declares_every_build_argument(tree: Path) -> None:
    edit(tree / "deploy/Dockerfile", "ARG MODULE\n", "")
    code, output = run(tree, "unused", "--only", "consistency")
    assert code == 1, output
    assert "ERROR [dockerfile] deploy/Dockerfile: no ARG MODULE" in output


def test_a_deployable_with_a_dockerfile_of_its_own_fails(tree: Path) -> None:
    (tree / "services/auth").mkdir(parents=True)
    (tree / "services/auth/Dockerfile").write_text("FROM python:3.11-slim\n")
    code, output = run(tree, "unused", "--only", "consistency")
    assert code == 1, output
    assert "ERROR [dockerfile] services/auth/Dockerfile: a copy: auth builds from deploy/Dockerfile" in output


def test_copies_must_match(tree: Path) -> None:
    edit(
        tree / "deploy/k8s/components/postgres-init/provision.sql", "\\connect eva_n8n\n", "\\connect eva_n8n\n-- x\n"
    )
    edit(tree / "deploy/k8s/components/kafka-topics/create-topics.sh", "set -eu\n", "set -eux\n")
    code, output = run(tree, "unused", "--only", "consistency")
    assert code == 1, output
    assert "ERROR [provision-sql] deploy/k8s/components/postgres-init/provision.sql: differs" in output
    assert "ERROR [topics] deploy/k8s/components/kafka-topics/create-topics.sh: differs" in output


# ----------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("eva/auth", ("eva/auth", None)),
        ("eva/auth:1.2.3", ("eva/auth", "1.2.3")),
        ("ghcr.io/acme/eva/auth:1.2.3", ("acme/eva/auth", "1.2.3")),
        ("localhost:5000/eva/auth:dev", ("eva/auth", "dev")),
        ("postgres:17", ("postgres", "17")),
        ("docker.io/library/redis:7.4", ("redis", "7.4")),
        ("apache/kafka:4.4.0@sha256:abc", ("apache/kafka", "4.4.0")),
    ],
)
def test_image_parts(image: str, expected: tuple[str, str | None]) -> None:
    assert vm.image_parts(image) == expected


def test_interpolation_follows_compose() -> None:
    report = vm.Report()
    interpolate = vm.Interpolator({"SET": "x", "EMPTY": ""}, "f", report)
    assert interpolate("${SET:?m}-${EMPTY:-d}-${EMPTY-d}-${UNSET:-d}-$$HOME-${SET:+alt}") == "x-d--d-$HOME-alt"
    assert report.findings == []
    interpolate("${MISSING:?Variable not set}")
    assert [f.rule for f in report.findings] == ["compose-env"]


def test_env_file_parsing(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('# c\nA=1 # trailing\nexport B=\'{"k": "v # not a comment"}\'\nC="x\\ny"\nD=\n')
    assert vm.parse_env_file(env) == {"A": "1", "B": '{"k": "v # not a comment"}', "C": "x\ny", "D": ""}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("EVA_SERVICE_CLIENT_SECRET", True),
        ("EVA_SERVICE_CLIENTS", True),
        ("EVA_JWT_SIGNING_KEYS", True),
        ("EVA_MIGRATION_DATABASE_URL", True),
        ("PGPASSWORD", True),
        ("EVA_ACCESS_TOKEN_TTL_SECONDS", False),
        ("EVA_KAFKA_BOOTSTRAP", False),
        ("EVA_HTTP_PORT", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert bool(vm.SECRET_NAME.search(name)) is secret


@pytest.mark.parametrize(
    ("value", "flagged"),
    [
        ("redis://:hunter2@redis:6379/0", True),
        ("postgresql+asyncpg://eva_app:pw@postgres:5432/eva_auth", True),
        ("redis://:${EVA_REDIS_PASSWORD:?Variable not set}@redis:6379/0", False),
        ("http://simulator:3010/v21.0/@me", False),
        ("kafka:9092", False),
    ],
)
def test_credential_urls(value: str, flagged: bool) -> None:
    match = vm.CREDENTIAL_URL.search(value)
    assert (match is not None and not match.group("password").startswith("${")) is flagged

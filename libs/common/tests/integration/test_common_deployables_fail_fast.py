"""Every deployable starts through the one skeleton: with a missing or malformed setting it exits 2 at once, naming
the field and never echoing the value (it may be a secret)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
REGISTRY = tomllib.loads((ROOT / "deploy" / "deployables.toml").read_text())["deployable"]
SERVICES = [row for row in REGISTRY if not row.get("dev_only")]
SECRET = "Tr0ub4dor-never-echo-me"


def _start(module: str, **env: str) -> tuple[int, list[dict[str, object]], str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "EVA_ENVIRONMENT": "production"}
    result = subprocess.run([sys.executable, "-m", module], env={**base, **env}, capture_output=True, text=True,
                            timeout=60, check=False, cwd=ROOT)
    output = result.stdout + result.stderr
    records = []
    for line in output.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return result.returncode, records, output


def _problem_fields(records: list[dict[str, object]]) -> set[str]:
    fields: set[str] = set()
    for record in records:
        for problem in record.get("problems", []) or []:  # type: ignore[union-attr]
            fields.add(str(problem["field"]))  # type: ignore[index]
    return fields


@pytest.mark.parametrize("row", SERVICES, ids=[row["name"] for row in SERVICES])
def test_a_deployable_exits_2_naming_each_missing_or_malformed_setting_and_echoes_no_value(
    row: dict[str, object],
) -> None:
    # a database URL with a password but the wrong driver, and nothing else: every required field is missing
    code, records, output = _start(str(row["module"]), EVA_DATABASE_URL=f"mysql://eva:{SECRET}@db.internal/eva")
    assert code == 2, output[-2000:]
    fields = _problem_fields(records)
    if row["name"] != "conversation":  # conversation calls auth with the caller's token: it needs no client secret
        assert "service_client_secret" in fields, fields
    if row.get("database"):
        assert "database_url" in fields, fields
    assert SECRET not in output
    assert "Traceback" not in output

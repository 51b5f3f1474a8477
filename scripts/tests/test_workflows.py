"""The GitHub Actions workflows: scripts/workflows.py (actionlint, pinned, plus the pinning rule) passes on
.github/workflows and fails on broken copies; and the workflows do what docs/releasing.md says (ci runs `make test`,
a v* tag tests, then builds and pushes the images with the tag's version)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from eva_testing.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "workflows.py"
WORKFLOWS = REPO / ".github" / "workflows"

workflows = load_script("workflows")


def check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--dir", str(folder)], capture_output=True, text=True,
                          timeout=600, check=False)


def load(name: str) -> dict[Any, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict)
    return document


def test_the_workflows_pass() -> None:
    result = check(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 workflows, clean" in result.stderr


BREAKAGES = {
    "an undefined context property": ("release.yml", "${{ github.ref_name }}", "${{ github.ref_nam }}",
                                      'property "ref_nam" is not defined'),
    "an unknown action input": ("ci.yml", "python-version:", "pyhton-version:",
                                'input "pyhton-version" is not defined'),
    "a needs on no job": ("ci.yml", "    runs-on: ubuntu-24.04\n", "    runs-on: ubuntu-24.04\n    needs: [lint]\n",
                          'needs job "lint" which does not exist'),
    "an unquoted expansion (shellcheck)": ("release.yml", 'VERSION="${TAG#v}"', "VERSION=${TAG#v}", "SC2086"),
    "an action on a branch": ("ci.yml", "actions/checkout@v6", "actions/checkout@main",
                              "actions/checkout@main is not pinned to a major tag"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_workflow_fails(breakage: str, tmp_path: Path) -> None:
    name, old, new, message = BREAKAGES[breakage]
    if message.startswith("SC"):
        assert shutil.which("shellcheck"), "shellcheck is not on PATH (scripts/bootstrap.sh installs it)"
    folder = tmp_path / ".github" / "workflows"
    shutil.copytree(WORKFLOWS, folder)
    text = (folder / name).read_text()
    assert old in text, f"{old!r} not in {name}"
    (folder / name).write_text(text.replace(old, new, 1))
    result = check(folder)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout, result.stdout


def test_every_action_is_pinned_to_a_major_tag() -> None:
    files = workflows.workflow_files(WORKFLOWS)
    uses = [m.group(1) for path in files for m in workflows.USES.finditer(path.read_text())]
    assert uses and all(workflows.PINNED.match(action) for action in uses), uses
    assert workflows.pinning_problems(files) == []


def _steps(document: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    steps = document["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def test_ci_runs_make_test_with_caches_and_a_timeout() -> None:
    ci = load("ci.yml")
    triggers = ci[True]  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    job = ci["jobs"]["test"]
    assert 0 < job["timeout-minutes"] <= 90
    runs = [step.get("run") for step in _steps(ci, "test")]
    assert "make test" in runs
    cached = next(s for s in _steps(ci, "test") if str(s.get("uses", "")).startswith("actions/cache@"))
    for path in ("~/.cache/uv", "~/go/pkg/mod", ".local/tools"):
        assert path in cached["with"]["path"].split()
    versions = {s["uses"].split("@")[0]: s.get("with", {}) for s in _steps(ci, "test") if "uses" in s}
    assert versions["actions/setup-python"]["python-version"] == "3.11"
    assert versions["actions/setup-java"]["java-version"] == "17"
    assert "actions/setup-go" in versions and "astral-sh/setup-uv" in versions


def test_release_tests_then_pushes_the_images_of_the_tag() -> None:
    release = load("release.yml")
    assert release[True] == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {"contents": "read", "packages": "write"}
    steps = _steps(release, "release")
    runs = [str(step.get("run", "")) for step in steps]
    test_at = runs.index("make test")
    login_at = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("docker/login-action@"))
    push_at = next(i for i, run in enumerate(runs) if "make images" in run)
    assert test_at < login_at < push_at  # a failing test pushes nothing
    assert steps[login_at]["with"]["registry"] == "ghcr.io"
    assert steps[login_at]["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    images = steps[push_at]
    assert images["env"]["TAG"] == "${{ github.ref_name }}"
    assert 'VERSION="${TAG#v}"' in images["run"] and "PUSH=1" in images["run"]
    assert 'registry="ghcr.io/${OWNER,,}"' in images["run"]
    # the step's script, run by bash as the runner does: a tag v1.2.3 of owner Hotel-Org gives these arguments
    script = images["run"].replace("make images", "printf '%s\\n' images")
    result = subprocess.run(["bash", "-e", "-c", script], env={"TAG": "v1.2.3", "OWNER": "Hotel-Org"},
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["images", "REGISTRY=ghcr.io/hotel-org", "VERSION=1.2.3", "PUSH=1"]

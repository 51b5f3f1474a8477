#!/usr/bin/env python3
"""Check the GitHub Actions workflows (.github/workflows) with the pinned actionlint (scripts/tools.py): syntax,
expressions and contexts, `needs`, action inputs, and the `run:` scripts with shellcheck when it is on PATH
(scripts/bootstrap.sh installs it). Plus the project's one rule: every action is pinned to a major tag
(`owner/repo@v6`), the same way in every workflow. `make lint` and `make test` run it.

    python3 scripts/workflows.py [--dir .github/workflows]    # exit 0 clean, 1 problems, 2 cannot run
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import tools

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*['\"]?([^'\"\s#]+)", re.M)
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@v[0-9]+$")


def workflow_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml")) if folder.is_dir() else []


def pinning_problems(files: Sequence[Path]) -> list[str]:
    """Actions not pinned to a major tag (a branch, a full version, a SHA: one convention, docs/releasing.md)."""
    problems: list[str] = []
    for path in files:
        text = path.read_text()
        for found in USES.finditer(text):
            action = found.group(1)
            if action.startswith(("./", "docker://")) or PINNED.match(action):
                continue
            line = text.count("\n", 0, found.start(1)) + 1
            problems.append(f"{path}:{line}: {action} is not pinned to a major tag (owner/repo@vN)")
    return problems


def lint(files: Sequence[Path], actionlint: Path) -> subprocess.CompletedProcess[str]:
    """actionlint over the files, from their repository's root (shellcheck is used when found on PATH)."""
    return subprocess.run([str(actionlint), "-no-color", *map(str, files)], capture_output=True, text=True,
                          timeout=300, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=WORKFLOWS, help="the workflows' folder")
    args = parser.parse_args(argv)
    files = workflow_files(args.dir)
    if not files:
        sys.stderr.write(f"workflows: no workflow in {args.dir}\n")
        return 2
    try:
        actionlint = tools.go_install(tools.ACTIONLINT)
    except tools.ToolError as error:
        sys.stderr.write(f"workflows: actionlint: {error}\n")
        return 2
    result = lint(files, actionlint)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode not in (0, 1):
        sys.stderr.write(f"workflows: actionlint could not run (exit {result.returncode})\n")
        return 2
    pinning = pinning_problems(files)
    sys.stdout.write("".join(f"{line}\n" for line in pinning))
    shellcheck = "with shellcheck" if shutil.which("shellcheck") else "without shellcheck (not on PATH)"
    failed = result.returncode != 0 or bool(pinning)
    sys.stderr.write(f"workflows: actionlint {tools.ACTIONLINT.version} {shellcheck}: {len(files)} workflows, "
                     f"{'problems above' if failed else 'clean'}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

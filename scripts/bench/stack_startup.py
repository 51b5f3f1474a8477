"""Local stack start-up, timed: `make up` from fresh data (after `make reset`) and `make up` right after `make down`.

    uv run --no-sync python scripts/bench/stack_startup.py fresh --runs 20
    uv run --no-sync python scripts/bench/stack_startup.py restart --runs 10 [--down-at-end]

Each run's `make up` is timed from the shell command to its exit (bootstrap included, as a user sees it), with the
stack's own "all N processes ready in Xs" figure beside it. A failed run is recorded with its exit status and the
last lines of its output, and the loop goes on (the next run's `make reset` / `make down` starts clean). Results go
to .local/bench/stack_startup-<mode>.json (one object per run, then the summary) and a summary line to stdout.
Uses the profile given with --profile (dev by default: ports 3001.., apart from the test profile).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"all (\d+) processes ready in ([\d.]+)s")
TAIL_LINES = 25


@dataclass(frozen=True, slots=True)
class Run:
    number: int
    mode: str
    before_seconds: float  # `make reset` (fresh) or `make down` (restart)
    up_seconds: float
    ready_seconds: float | None  # the stack's own figure: infrastructure up -> every process ready
    ok: bool
    reason: str = ""


def make(target: str, profile: str) -> tuple[int, float, str]:
    started = time.monotonic()
    result = subprocess.run(["make", target, f"PROFILE={profile}"], cwd=ROOT, capture_output=True, text=True,  # noqa: S607
                            check=False)
    return result.returncode, time.monotonic() - started, result.stdout + result.stderr


def failure_reason(code: int, output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return f"exit {code}:\n" + "\n".join(lines[-TAIL_LINES:])


def one_run(number: int, mode: str, profile: str) -> Run:
    code, before, output = make("reset" if mode == "fresh" else "down", profile)
    if code != 0:
        return Run(number, mode, before, 0.0, None, False, f"make {'reset' if mode == 'fresh' else 'down'} "
                   + failure_reason(code, output))
    code, up, output = make("up", profile)
    ready = READY.search(output)
    return Run(number, mode, before, up, float(ready.group(2)) if ready else None, code == 0,
               "" if code == 0 else "make up " + failure_reason(code, output))


def summary(runs: list[Run]) -> dict[str, Any]:
    good = [r for r in runs if r.ok]

    def stats(values: list[float]) -> dict[str, float | None]:
        return {"median": round(statistics.median(values), 1) if values else None,
                "max": round(max(values), 1) if values else None}

    return {
        "runs": len(runs), "failed": len(runs) - len(good),
        "up_seconds": stats([r.up_seconds for r in good]),
        "ready_seconds": stats([r.ready_seconds for r in good if r.ready_seconds is not None]),
        "before_seconds": stats([r.before_seconds for r in runs]),
        "failures": [{"run": r.number, "reason": r.reason} for r in runs if not r.ok],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["fresh", "restart"])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profile", default="dev", choices=["dev", "test"])
    parser.add_argument("--down-at-end", action="store_true", help="`make down` once the runs are done")
    args = parser.parse_args()
    out = ROOT / ".local" / "bench" / f"stack_startup-{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.mode == "restart":  # each run starts from a running stack
        code, _, output = make("up", args.profile)
        if code != 0:
            sys.stderr.write(f"the stack to restart did not come up: {failure_reason(code, output)}\n")
            return 1
    runs: list[Run] = []
    for number in range(1, args.runs + 1):
        run = one_run(number, args.mode, args.profile)
        runs.append(run)
        state = "ok" if run.ok else "FAILED"
        sys.stdout.write(f"{args.mode} run {number}: {state} before {run.before_seconds:.1f}s up {run.up_seconds:.1f}s"
                         f" ready {run.ready_seconds}s\n" + (f"{run.reason}\n" if not run.ok else ""))
        sys.stdout.flush()
        out.write_text(json.dumps({"runs": [asdict(r) for r in runs], "summary": summary(runs)}, indent=2))
    result = summary(runs)
    sys.stdout.write(json.dumps({k: v for k, v in result.items() if k != "failures"}) + "\n")
    if args.down_at_end:
        make("down", args.profile)
    return 0 if not result["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())

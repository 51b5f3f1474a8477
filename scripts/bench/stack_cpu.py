"""CPU time of a running local stack, per process, from /proc: what the benchmarks charge to a unit of work.

A process's figure is its utime + stime. A process that forks workers (PostgreSQL's postmaster: one backend per
connection, background writers) is counted as a tree: its own time, the time of the children it has reaped (cutime +
cstime) and the time of its live children, so a backend that exits between two samples still counts once.

    before = sample(pids)          # pids: name -> pid, e.g. stack_pids("dev") plus the benchmark's own processes
    ... the work ...
    after = sample(pids)
    cost = charged(idle=(idle_before, idle_after), run=(before, after), units=messages)

`charged` subtracts the idle cost of each process (measured on its own, just before, scaled to the run's length) and
divides by the units: milliseconds of CPU per unit, per process and in total.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sockets import CLOCK_TICKS, stack_pids

TREES = frozenset({"postgres"})  # processes counted with their children
INFRASTRUCTURE = ("postgres", "redis", "kafka")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def own_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def children(pid: int) -> Iterable[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:  # ppid
                    yield int(entry.name)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue


def tree_seconds(pid: int) -> float:
    """The process, its reaped children (cutime + cstime) and its live children."""
    fields = _stat(pid)
    total = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    for child in children(pid):
        try:
            total += own_seconds(child)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile: its time is in the parent's cutime at the next sample
    return total


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.monotonic()
    seconds: dict[str, float]  # name -> CPU seconds so far


def sample(pids: Mapping[str, int]) -> Sample:
    seconds: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            seconds[name] = tree_seconds(pid) if name in TREES else own_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return Sample(at=time.monotonic(), seconds=seconds)


async def settle(pids: Mapping[str, int], *, busy_cores: float = 0.45, quiet_samples: int = 5,
                 timeout: float = 600.0) -> float:
    """Waits until the processes together use less than `busy_cores` for `quiet_samples` seconds in a row (the work
    of an earlier run, e.g. consumers behind after an overload, would otherwise count as the next run's idle cost);
    returns the seconds waited (the timeout when they never settle)."""
    started = time.monotonic()
    quiet = 0
    last = sample(pids)
    while quiet < quiet_samples and time.monotonic() - started < timeout:
        await asyncio.sleep(1.0)
        now = sample(pids)
        used = sum(now.seconds[name] - last.seconds[name] for name in now.seconds if name in last.seconds)
        quiet = quiet + 1 if used / max(1e-9, now.at - last.at) < busy_cores else 0
        last = now
    return time.monotonic() - started


def process_pids(profile: str) -> dict[str, int]:
    """The stack's processes by name (deployables, simulator, infrastructure), without the `:port` aliases."""
    return {name: pid for name, pid in stack_pids(profile).items() if not name.startswith(":")}


@dataclass(frozen=True, slots=True)
class Charge:
    per_unit_ms: dict[str, float]  # name -> CPU ms per unit, idle cost subtracted
    run_cores: dict[str, float]  # name -> cores used during the run (CPU s / wall s), idle included
    idle_cores: dict[str, float]  # name -> cores used while idle
    run_seconds: float
    units: int


def charged(*, idle: tuple[Sample, Sample], run: tuple[Sample, Sample], units: int) -> Charge:
    idle_wall = max(1e-9, idle[1].at - idle[0].at)
    run_wall = max(1e-9, run[1].at - run[0].at)
    per_unit: dict[str, float] = {}
    run_cores: dict[str, float] = {}
    idle_cores: dict[str, float] = {}
    for name in run[1].seconds:
        if name not in run[0].seconds:
            continue
        used = run[1].seconds[name] - run[0].seconds[name]
        at_rest = 0.0
        if name in idle[0].seconds and name in idle[1].seconds:
            at_rest = (idle[1].seconds[name] - idle[0].seconds[name]) / idle_wall
        idle_cores[name] = at_rest
        run_cores[name] = used / run_wall
        per_unit[name] = 1000 * (used - at_rest * run_wall) / units if units else float("nan")
    return Charge(per_unit_ms=per_unit, run_cores=run_cores, idle_cores=idle_cores, run_seconds=run_wall,
                  units=units)


def median_of(rows: Iterable[dict[str, Any]], get: Callable[[dict[str, Any]], Any]) -> float | None:
    """The median (2 decimals) of a figure over benchmark runs, runs without it left out."""
    values = [float(value) for value in (get(row) for row in rows) if value is not None]
    return round(statistics.median(values), 2) if values else None

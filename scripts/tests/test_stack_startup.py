"""Start-up with real processes: a port still held by a process going away is waited for (bounded), and a process
that exits during start-up is reported with its exit status and the last lines of its log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import infra
import pytest
import stack

# Listens on the port given as argv[1], says so, and goes away only once its stdin is closed (after a moment, as
# a server that drains its connections before it exits).
HOLDER = """
import socket, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
sys.stdin.read()
time.sleep(0.5)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def holder() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(port)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "listening"
    yield process, port
    if process.poll() is None:
        process.kill()
    process.wait()


def release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()


def test_a_port_held_by_a_process_going_away_is_waited_for(holder: tuple[subprocess.Popen[str], int]) -> None:
    process, port = holder
    assert not infra.port_free(port)
    release(process)
    assert infra.wait_port_free(port, timeout=60)
    assert infra.port_free(port)
    assert process.wait() == 0


def test_a_port_that_stays_held_names_its_holder(holder: tuple[subprocess.Popen[str], int]) -> None:
    process, port = holder
    assert not infra.wait_port_free(port, timeout=0.5)
    message = infra.port_busy_message(port, "cannot start simulator", 0.5)
    assert f"port 127.0.0.1:{port}" in message
    assert f"pid {process.pid} (" in message


def test_infra_refuses_a_port_that_stays_held(holder: tuple[subprocess.Popen[str], int]) -> None:
    _, port = holder
    with pytest.raises(infra.InfraError, match="still in use"):
        infra.ensure_port_free(port, "redis", timeout=0.3)


def fake_stack(tmp_path: Path) -> stack.Stack:
    made = stack.Stack("test", local_root=tmp_path)
    stack.load_secrets(made)
    return made


def test_start_waits_for_the_port_then_starts(tmp_path: Path, holder: tuple[subprocess.Popen[str], int]) -> None:
    process, port = holder
    local = fake_stack(tmp_path)
    # `python -m json.tool` reads stdin (empty here) and exits 1: a real process that dies during start-up
    item = stack.Deployable("bogus", "json.tool", ".", port)
    release(process)
    launch = stack.start(local, item, stack.load_secrets(local), port_timeout=60)
    assert launch is not None
    assert launch.process.wait() == 1
    assert stack.pid_file(local, item).read_text() == str(launch.process.pid)


def test_start_refuses_a_port_that_stays_held(tmp_path: Path, holder: tuple[subprocess.Popen[str], int]) -> None:
    process, port = holder
    local = fake_stack(tmp_path)
    item = stack.Deployable("bogus", "json.tool", ".", port)
    with pytest.raises(SystemExit, match=f"pid {process.pid}"):
        stack.start(local, item, stack.load_secrets(local), port_timeout=0.3)
    assert not stack.pid_file(local, item).exists()


def test_an_exit_during_start_up_is_reported_with_its_code_and_log(tmp_path: Path) -> None:
    local = fake_stack(tmp_path)
    item = stack.Deployable("bogus", "json.tool", ".", free_port())
    log = local.log_dir / "bogus.log"
    log.parent.mkdir(parents=True)
    log.write_text("an older run's last words\n")
    launch = stack.start(local, item, stack.load_secrets(local))
    assert launch is not None
    with pytest.raises(SystemExit) as failure:
        stack.wait_ready(local, [item], {item.process_name(): launch}, timeout=120)
    report = str(failure.value)
    assert report.startswith("bogus exited with code 1 during start-up")
    assert "Expecting value" in report  # json.tool's own error, from the log
    assert "an older run's last words" not in report
    assert not stack.pid_file(local, item).exists()


# A deployable that runs until it is stopped, with a child in its process group that takes a moment to go away
# after SIGTERM (its pid in child.pid) while the leader exits at once.
SLEEPER = """
import signal, subprocess, sys, time
from pathlib import Path
CHILD = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5), sys.exit(0)));"
         " time.sleep(600)")
child = subprocess.Popen([sys.executable, "-c", CHILD])
Path("child.pid").write_text(str(child.pid))
print("up", flush=True)
time.sleep(600)
"""


@pytest.fixture
def sleeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> stack.Deployable:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "eva_sleeper.py").write_text(SLEEPER)
    monkeypatch.setenv("PYTHONPATH", str(modules))
    return stack.Deployable("sleeper", "eva_sleeper", str(tmp_path), free_port())


def test_a_killed_process_is_reported_with_its_signal(tmp_path: Path, sleeper: stack.Deployable) -> None:
    local = fake_stack(tmp_path)
    launch = stack.start(local, sleeper, stack.load_secrets(local))
    assert launch is not None
    os.kill(launch.process.pid, signal.SIGKILL)
    launch.process.wait()
    report = stack.exit_report(launch)
    assert report.startswith("sleeper was killed by SIGKILL during start-up")
    stack.stop(local, sleeper)


def test_stop_waits_for_the_whole_process_group(tmp_path: Path, sleeper: stack.Deployable,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    local = fake_stack(tmp_path)
    monkeypatch.setattr(stack, "ROOT", tmp_path)  # the sleeper writes child.pid into its working directory
    launch = stack.start(local, sleeper, stack.load_secrets(local))
    assert launch is not None
    child_pid_file = tmp_path / "child.pid"
    while "\nup\n" not in launch.log.read_text():  # the leader has started its child
        assert launch.process.poll() is None, launch.log.read_text()
        time.sleep(0.05)
    child = int(child_pid_file.read_text())
    assert stack.running_pid(local, sleeper) == launch.process.pid
    stack.stop(local, sleeper)
    assert launch.process.wait() == -signal.SIGTERM
    assert not stack.group_alive(launch.process.pid)
    assert infra.pid_state(child) in (None, "Z")  # the child had to finish its own shutdown first
    assert not stack.pid_file(local, sleeper).exists()

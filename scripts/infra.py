#!/usr/bin/env python3
"""Local infrastructure for Eva: PostgreSQL, Redis and a KRaft Kafka node per profile.

Stdlib only: it must run with plain ``python3`` before the uv venv exists.

    python3 scripts/infra.py {up,down,status,reset,env,fetch-kafka} --profile {dev,test}

All state lives under ``<repo>/.local/<profile>/`` (Kafka jars are shared under ``.local/kafka/``).
Other scripts may ``import infra`` and call :func:`profile_env`. See docs/infrastructure.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deployables  # noqa: E402  (scripts/deployables.py, stdlib only)

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_ROOT = REPO_ROOT / ".local"
KAFKA_POM = REPO_ROOT / "scripts" / "kafka" / "pom.xml"
KAFKA_LOG4J_3X = REPO_ROOT / "scripts" / "kafka" / "log4j.properties"
KAFKA_SMOKE = REPO_ROOT / "scripts" / "kafka_smoke.py"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
HOST = "127.0.0.1"

PG_OS_USER = "postgres"
OWNER_ROLE = "eva_owner"
OWNER_SECRET = "eva_owner"  # noqa: S105 - local dev/test credential, documented
APP_ROLE = "eva_app"
APP_SECRET = "eva_app"  # noqa: S105 - local dev/test credential, documented
DATABASES = tuple(d.database for d in deployables.load() if d.database)  # deploy/deployables.toml

PROFILE_PORTS: dict[str, tuple[int, int, int, int]] = {
    # profile: (postgres, redis, kafka, kafka controller)
    "dev": (15432, 16379, 19092, 19093),
    "test": (25432, 26379, 29092, 29093),
}

KAFKA_READY_TIMEOUT_S = 90.0
PORT_RELEASE_TIMEOUT_S = 30.0  # how long `up` waits for a port held by a process going away
KAFKA_STOP_TIMEOUT_S = 30.0
KAFKA_JVM_OPTS = ("-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
KAFKA_MAX_MESSAGE_BYTES = 4194304


class InfraError(RuntimeError):
    """A failure with a message meant for the user; the CLI prints it and exits 1."""


# --------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class Profile:
    name: str
    pg_port: int
    redis_port: int
    kafka_port: int
    kafka_controller_port: int

    @property
    def root(self) -> Path:
        return LOCAL_ROOT / self.name

    @property
    def pg_dir(self) -> Path:
        return self.root / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_run(self) -> Path:
        return self.pg_dir / "run"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def kafka_dir(self) -> Path:
        return self.root / "kafka"


def load_profile(name: str) -> Profile:
    if name not in PROFILE_PORTS:
        raise InfraError(f"unknown profile {name!r} (expected one of {', '.join(PROFILE_PORTS)})")
    pg, redis, kafka, ctrl = PROFILE_PORTS[name]
    return Profile(
        name=name,
        pg_port=_env_port("EVA_PG_PORT", pg),
        redis_port=_env_port("EVA_REDIS_PORT", redis),
        kafka_port=_env_port("EVA_KAFKA_PORT", kafka),
        kafka_controller_port=_env_port("EVA_KAFKA_CONTROLLER_PORT", ctrl),
    )


def _env_port(var: str, default: int) -> int:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise InfraError(f"{var}={raw!r} is not a TCP port")
    return int(raw)


def profile_env(profile: str) -> dict[str, str]:
    """Connection settings of a profile, as environment variables (what ``env`` prints)."""
    p = load_profile(profile)
    return {
        "EVA_PG_HOST": HOST,
        "EVA_PG_PORT": str(p.pg_port),
        "EVA_REDIS_URL": f"redis://{HOST}:{p.redis_port}/0",
        "EVA_KAFKA_BOOTSTRAP": f"{HOST}:{p.kafka_port}",
        "EVA_PG_OWNER_USER": OWNER_ROLE,
        "EVA_PG_OWNER_PASSWORD": OWNER_SECRET,
        "EVA_PG_APP_USER": APP_ROLE,
        "EVA_PG_APP_PASSWORD": APP_SECRET,
    }


# --------------------------------------------------------------------------- helpers


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def warn(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise concurrent invocations that touch the same state (same profile, same jar dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run(cmd: Sequence[str], *, cwd: Path | None = None, stdin: str | None = None) -> str:
    """Run a short command; raise InfraError with its output when it fails."""
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
        list(cmd),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
    )
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise InfraError(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n{output}")
    return proc.stdout


def pid_state(pid: int) -> str | None:
    """The /proc state letter of ``pid`` ("R", "S", "Z" …), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int | None, needle: str) -> bool:
    """True when ``pid`` runs (not a zombie) and its command line contains ``needle`` (pid reuse guard)."""
    if not pid or pid_state(pid) in (None, "Z"):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return needle in cmdline


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def terminate(pid: int, needle: str, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, needle):
            return
        time.sleep(0.2)
    warn(f"pid {pid} did not stop after {timeout:.0f}s: SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while pid_alive(pid, needle):
        time.sleep(0.1)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def port_free(port: int) -> bool:
    """True when a server could bind HOST:port now (SO_REUSEADDR, as servers set it: a closing connection in
    TIME_WAIT does not count; a listener, even one that is shutting down, does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_holders(port: int) -> list[str]:
    """`pid <n> (<command line>)` of each process listening on ``port`` that this user may inspect."""
    inodes = _listening_inodes(port)
    holders: list[str] = []
    if not inodes:
        return holders
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if any(link == f"socket:[{inode}]" for inode in inodes for link in links):
            holders.append(f"pid {proc.name} ({cmdline[:120]})")
    return holders


def wait_port_free(port: int, timeout: float = PORT_RELEASE_TIMEOUT_S) -> bool:
    """Wait (bounded) for a port that a process going away still holds; True once it can be bound."""
    deadline = time.monotonic() + timeout
    while not port_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def port_busy_message(port: int, what: str, timeout: float) -> str:
    holders = port_holders(port)
    by = ", ".join(holders) if holders else "a process this user cannot see"
    return f"{what}: port {HOST}:{port} still in use after {timeout:.0f}s, by {by}"


def ensure_port_free(port: int, what: str, timeout: float = PORT_RELEASE_TIMEOUT_S) -> None:
    if not wait_port_free(port, timeout):
        raise InfraError(port_busy_message(port, what, timeout))


def status_line(component: str, healthy: bool, port: int, pid: int | None, detail: str = "") -> str:
    state = "running/healthy" if healthy else "not running"
    pid_text = f"pid {pid}" if pid else "pid -"
    extra = f"  {detail}" if detail else ""
    return f"{component:<9} {state:<15} {HOST}:{port:<6} {pid_text}{extra}"


# --------------------------------------------------------------------------- postgres


def pg_bin_dir() -> Path:
    """Newest /usr/lib/postgresql/<ver>/bin that has initdb and pg_ctl."""
    candidates = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bindir.parent.name
        if version.isdigit() and (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            candidates.append((int(version), bindir))
    if not candidates:
        raise InfraError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin: run scripts/bootstrap.sh")
    return max(candidates)[1]


def as_postgres(cmd: Sequence[str]) -> list[str]:
    """Wrap ``cmd`` to run as the postgres OS user (initdb/pg_ctl refuse root)."""
    if os.geteuid() != 0:
        return list(cmd)
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_OS_USER, "--", *cmd]
    return ["su", PG_OS_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]


def make_traversable(path: Path) -> None:
    """Let the postgres user reach ``path``: add o+x to every ancestor that lacks it."""
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            warn(f"note: adding o+x to {parent} so the postgres user can reach {path}")
            parent.chmod(mode | stat.S_IXOTH)


def pg_prepare_dirs(p: Profile) -> None:
    for d in (p.root, p.pg_dir, p.pg_run):
        d.mkdir(parents=True, exist_ok=True)
    for d in (LOCAL_ROOT, p.root):
        d.chmod(0o755)
    make_traversable(p.pg_dir)
    if os.geteuid() == 0:
        for d in (p.pg_dir, p.pg_run):
            shutil.chown(d, PG_OS_USER, PG_OS_USER)
    socket_path = p.pg_run / f".s.PGSQL.{p.pg_port}"
    if len(str(socket_path).encode()) > 100:
        raise InfraError(f"unix socket path too long for PostgreSQL ({socket_path}); move the repo to a shorter path")


def pg_config_text(p: Profile) -> str:
    return "\n".join(
        [
            "# written by scripts/infra.py on every `up`",
            f"listen_addresses = '{HOST}'",
            f"port = {p.pg_port}",
            f"unix_socket_directories = '{p.pg_run}'",
            "max_connections = 300",
            "fsync = on",
            "synchronous_commit = on",
            "password_encryption = 'scram-sha-256'",
            "log_min_messages = warning",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            "",
        ]
    )


def pg_initdb(p: Profile, bindir: Path) -> None:
    if (p.pg_data / "PG_VERSION").exists():
        return
    if p.pg_data.exists():
        shutil.rmtree(p.pg_data)  # a half-finished initdb leaves an unusable folder
    cmd = [
        str(bindir / "initdb"),
        "-D",
        str(p.pg_data),
        "-U",
        PG_OS_USER,
        "--auth-local=peer",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        "--no-instructions",
    ]
    run(as_postgres(cmd), cwd=p.pg_dir)
    conf = p.pg_data / "postgresql.conf"
    conf.write_text(conf.read_text() + "\ninclude_if_exists = 'eva.conf'\n")
    hba = "\n".join(
        [
            "# written by scripts/infra.py: peer on the socket (the script, as OS user postgres),",
            "# scram-sha-256 over TCP on 127.0.0.1 only.",
            "local   all   all                 peer",
            f"host    all   all   {HOST}/32    scram-sha-256",
            "",
        ]
    )
    (p.pg_data / "pg_hba.conf").write_text(hba)


def pg_write_config(p: Profile) -> None:
    target = p.pg_data / "eva.conf"
    target.write_text(pg_config_text(p))
    if os.geteuid() == 0:
        shutil.chown(target, PG_OS_USER, PG_OS_USER)
        shutil.chown(p.pg_data / "pg_hba.conf", PG_OS_USER, PG_OS_USER)


def pg_pid(p: Profile) -> int | None:
    pid = read_pid(p.pg_data / "postmaster.pid")
    return pid if pid_alive(pid, str(p.pg_data)) else None


def pg_clear_stale_lock(p: Profile) -> None:
    """Lock files of a dead server. postgres refuses to start while the pid they name exists at all:
    an unreaped zombie postmaster (after a crash; PID 1 here reaps lazily) or a reused pid."""
    locks = [p.pg_data / "postmaster.pid", p.pg_run / f".s.PGSQL.{p.pg_port}.lock"]
    pid = read_pid(locks[0]) or read_pid(locks[1])
    if pid is None or pid_alive(pid, str(p.pg_data)):
        return
    deadline = time.monotonic() + 15  # give the orphaned backends time to exit, PID 1 time to reap
    while pid_state(pid) == "Z" and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_state(pid) is not None:
        warn(f"postgres: removing stale lock files of dead postmaster {pid}")
        for lock in locks:
            lock.unlink(missing_ok=True)


def pg_healthy(p: Profile) -> bool:
    if pg_pid(p) is None:
        return False
    isready = shutil.which("pg_isready") or "/usr/bin/pg_isready"
    try:
        bindir = pg_bin_dir()
        isready = str(bindir / "pg_isready") if (bindir / "pg_isready").exists() else isready
    except InfraError:
        return False
    proc = subprocess.run(  # noqa: S603
        [isready, "-q", "-h", HOST, "-p", str(p.pg_port), "-t", "3"], check=False, capture_output=True
    )
    return proc.returncode == 0


def pg_start(p: Profile, bindir: Path) -> str:
    if pg_healthy(p):
        return "already running"
    if pg_pid(p) is None:
        ensure_port_free(p.pg_port, "postgres")
        pg_clear_stale_lock(p)
    pg_write_config(p)
    log = p.pg_dir / "postgresql.log"
    cmd = [str(bindir / "pg_ctl"), "-D", str(p.pg_data), "-l", str(log), "-w", "-t", "60", "start"]
    try:
        run(as_postgres(cmd), cwd=p.pg_dir)
    except InfraError as exc:
        raise InfraError(f"{exc}\n--- tail of {log} ---\n{log_tail(log)}") from exc
    return "started"


def pg_provision_sql() -> str:
    """Idempotent roles, databases and grants (run as superuser over the unix socket)."""
    lines = [
        r"\set ON_ERROR_STOP on",
        f"SELECT 'CREATE ROLE {OWNER_ROLE}' WHERE NOT EXISTS "
        f"(SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') \\gexec",
        f"SELECT 'CREATE ROLE {APP_ROLE}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') \\gexec",
        f"ALTER ROLE {OWNER_ROLE} LOGIN CREATEDB NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS "
        f"PASSWORD '{OWNER_SECRET}';",
        f"ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
        f"PASSWORD '{APP_SECRET}';",
    ]
    for db in DATABASES:
        lines += [
            f"SELECT 'CREATE DATABASE {db} OWNER {OWNER_ROLE}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{db}') \\gexec",
            f"ALTER DATABASE {db} OWNER TO {OWNER_ROLE};",
            f"GRANT CONNECT ON DATABASE {db} TO {APP_ROLE};",
            f"\\connect {db}",
            f"ALTER SCHEMA public OWNER TO {OWNER_ROLE};",
            f"GRANT USAGE, CREATE ON SCHEMA public TO {OWNER_ROLE};",
            f"GRANT USAGE ON SCHEMA public TO {APP_ROLE};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
            f"GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public "
            f"GRANT EXECUTE ON FUNCTIONS TO {APP_ROLE};",
            r"\connect postgres",
        ]
    return "\n".join(lines) + "\n"


def pg_provision(p: Profile, bindir: Path) -> None:
    psql = [str(bindir / "psql"), "-X", "-q", "-h", str(p.pg_run), "-p", str(p.pg_port)]
    run(as_postgres([*psql, "-U", PG_OS_USER, "-d", "postgres", "-f", "-"]), cwd=p.pg_dir, stdin=pg_provision_sql())


def pg_up(p: Profile) -> str:
    bindir = pg_bin_dir()
    pg_prepare_dirs(p)
    pg_initdb(p, bindir)
    result = pg_start(p, bindir)
    pg_provision(p, bindir)
    return result


def pg_down(p: Profile) -> bool:
    if pg_pid(p) is None:
        return False
    cmd = [str(pg_bin_dir() / "pg_ctl"), "-D", str(p.pg_data), "-m", "fast", "-w", "-t", "60", "stop"]
    run(as_postgres(cmd), cwd=p.pg_dir)
    return True


# --------------------------------------------------------------------------- redis


def redis_pidfile(p: Profile) -> Path:
    return p.redis_dir / "redis.pid"


def redis_pid(p: Profile) -> int | None:
    pid = read_pid(redis_pidfile(p))
    return pid if pid_alive(pid, "redis-server") else None


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_healthy(p: Profile) -> bool:
    return redis_pid(p) is not None and redis_ping(p.redis_port)


def redis_up(p: Profile) -> str:
    if redis_healthy(p):
        return "already running"
    binary = shutil.which("redis-server")
    if not binary:
        raise InfraError("redis-server not found: run scripts/bootstrap.sh")
    if redis_pid(p) is None:
        ensure_port_free(p.redis_port, "redis")
    p.redis_dir.mkdir(parents=True, exist_ok=True)
    log = p.redis_dir / "redis.log"
    cmd = [
        binary,
        "--port", str(p.redis_port),
        "--bind", HOST,
        "--daemonize", "yes",
        "--pidfile", str(redis_pidfile(p)),
        "--logfile", str(log),
        "--dir", str(p.redis_dir),
        "--maxmemory-policy", "noeviction",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
    ]  # fmt: skip
    run(cmd, cwd=p.redis_dir)
    deadline = time.monotonic() + 15
    while not redis_healthy(p):
        if time.monotonic() > deadline:
            raise InfraError(f"redis did not answer PING on port {p.redis_port}\n{log_tail(log)}")
        time.sleep(0.05)
    return "started"


def redis_down(p: Profile) -> bool:
    pid = redis_pid(p)
    if pid is None:
        return False
    terminate(pid, "redis-server", timeout=30)  # SIGTERM = graceful shutdown, AOF flushed
    return True


# --------------------------------------------------------------------------- kafka


def kafka_version() -> str:
    """$KAFKA_VERSION, else the default ``kafka.version`` property of scripts/kafka/pom.xml."""
    override = os.environ.get("KAFKA_VERSION", "").strip()
    if override:
        return override
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(KAFKA_POM).getroot().find("m:properties/m:kafka.version", ns)  # noqa: S314 - our own file
    if node is None or not (node.text or "").strip():
        raise InfraError(f"no <kafka.version> property in {KAFKA_POM}")
    return (node.text or "").strip()


def is_kafka3(version: str) -> bool:
    return version.startswith("3.")


def kafka_libs(version: str) -> Path:
    return LOCAL_ROOT / "kafka" / version / "libs"


def fetch_kafka(version: str) -> Path:
    """Copy the broker jars from Maven Central once (``mvn dependency:copy-dependencies``)."""
    libs = kafka_libs(version)
    if libs.is_dir():
        return libs
    with file_lock(LOCAL_ROOT / "kafka" / ".fetch.lock"):
        if libs.is_dir():
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise InfraError("mvn not found (Maven 3.8+ and Java 17 are needed for Kafka)")
        tmp = libs.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            mvn, "-B", "-q", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}", "-DincludeScope=runtime", f"-Dkafka.version={version}",
        ]  # fmt: skip
        if is_kafka3(version):
            cmd.append("-Pkafka3")
        say(f"kafka     fetching {version} jars with Maven (once)")
        run(cmd, cwd=REPO_ROOT)
        if not any(tmp.glob(f"kafka_2.13-{version}.jar")):
            raise InfraError(f"maven finished but kafka_2.13-{version}.jar is missing in {tmp}")
        tmp.rename(libs)
    return libs


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise InfraError("java not found (Kafka needs Java 17+)")
    return found


def kafka_properties(p: Profile) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{p.kafka_controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{p.kafka_port},CONTROLLER://{HOST}:{p.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{p.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(p.kafka_dir / "data"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.recovery.threads.per.data.dir": "1",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.cleaner.dedupe.buffer.size": "1048577",
        "message.max.bytes": str(KAFKA_MAX_MESSAGE_BYTES),
        "replica.fetch.max.bytes": str(KAFKA_MAX_MESSAGE_BYTES),
        "socket.request.max.bytes": "104857600",
    }
    body = "\n".join(f"{key}={value}" for key, value in settings.items())
    return f"# written by scripts/infra.py on every `up`\n{body}\n"


def kafka_pidfile(p: Profile) -> Path:
    return p.kafka_dir / "kafka.pid"


def kafka_pid(p: Profile) -> int | None:
    pid = read_pid(kafka_pidfile(p))
    return pid if pid_alive(pid, str(p.kafka_dir / "server.properties")) else None


def kafka_api_versions(port: int, timeout: float = 3.0) -> bool:
    """One ApiVersions v0 round trip over a raw socket: True when the broker answers error_code 0."""
    client_id = b"eva-infra"
    header = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            size = int(struct.unpack(">i", _recv_exact(sock, 4))[0])
            if not 6 <= size <= 1 << 20:
                return False
            body = _recv_exact(sock, size)
    except (OSError, struct.error):
        return False
    correlation_id, error_code = struct.unpack(">ih", body[:6])
    return bool(correlation_id == 7 and error_code == 0)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return bytes(chunks)


def kafka_healthy(p: Profile) -> bool:
    return kafka_pid(p) is not None and kafka_api_versions(p.kafka_port)


def new_cluster_id() -> str:
    """Kafka's Uuid.toString() form (22 url-safe base64 chars); like Uuid.randomUuid(), never
    starting with '-', which StorageTool's argument parser would take for an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def kafka_cluster_id(p: Profile) -> str:
    path = p.kafka_dir / "cluster.id"
    stored = path.read_text().strip() if path.exists() else ""
    if len(stored) == 22 and not stored.startswith("-"):
        return stored
    cid = new_cluster_id()
    path.write_text(cid + "\n")
    return cid


def kafka_format(p: Profile, version: str, classpath: str) -> None:
    """Format the KRaft storage once; refuse to reuse data formatted by another Kafka version."""
    marker = p.kafka_dir / "version"
    if (p.kafka_dir / "data" / "meta.properties").exists():
        formatted = marker.read_text().strip() if marker.exists() else version
        if formatted != version:
            raise InfraError(
                f"kafka data in {p.kafka_dir} was formatted by Kafka {formatted}, not {version}: "
                f"run `python3 scripts/infra.py reset --profile {p.name}`"
            )
        return
    cmd = [
        java_binary(), "-Xmx256m", "-XX:+UseSerialGC", *kafka_log_opts(version, p),
        "-cp", classpath, "kafka.tools.StorageTool", "format",
        "-t", kafka_cluster_id(p), "-c", str(p.kafka_dir / "server.properties"),
    ]  # fmt: skip
    run(cmd, cwd=p.kafka_dir)
    marker.write_text(version + "\n")


def kafka_log_opts(version: str, p: Profile) -> list[str]:
    opts = [f"-Dkafka.logs.dir={p.kafka_dir / 'logs'}"]
    if is_kafka3(version):
        opts.append(f"-Dlog4j.configuration=file:{KAFKA_LOG4J_3X}")
    else:
        opts += [
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
            # the full config dumps (AbstractConfig "values:") are ~2,000 lines per start
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config.AbstractConfig=warn",
        ]
    return opts


@dataclass
class KafkaLaunch:
    proc: subprocess.Popen[bytes] | None  # None: it was already running
    log: Path


def kafka_start(p: Profile) -> KafkaLaunch:
    """Start the broker without waiting for it (see kafka_wait)."""
    log = p.kafka_dir / "kafka.log"
    if kafka_healthy(p):
        return KafkaLaunch(None, log)
    if kafka_pid(p) is not None:  # starting up, or wedged: let kafka_wait decide
        return KafkaLaunch(None, log)
    for port in (p.kafka_port, p.kafka_controller_port):
        ensure_port_free(port, "kafka")
    version = kafka_version()
    classpath = f"{fetch_kafka(version)}/*"
    p.kafka_dir.mkdir(parents=True, exist_ok=True)
    (p.kafka_dir / "server.properties").write_text(kafka_properties(p))
    kafka_format(p, version, classpath)
    if log.exists():
        log.replace(log.with_suffix(".log.1"))
    cmd = [
        java_binary(), *KAFKA_JVM_OPTS, *kafka_log_opts(version, p),
        "-cp", classpath, "kafka.Kafka", str(p.kafka_dir / "server.properties"),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            cmd,
            cwd=p.kafka_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    kafka_pidfile(p).write_text(f"{proc.pid}\n")
    return KafkaLaunch(proc, log)


def kafka_wait(p: Profile, launch: KafkaLaunch) -> str:
    """Wait until the broker answers ApiVersions; fail fast if the JVM dies."""
    deadline = time.monotonic() + KAFKA_READY_TIMEOUT_S
    while not kafka_healthy(p):
        dead = launch.proc.poll() is not None if launch.proc else kafka_pid(p) is None
        if dead:
            kafka_pidfile(p).unlink(missing_ok=True)
            code = launch.proc.returncode if launch.proc else None
            status = f" (exit code {code})" if code is not None else ""
            raise InfraError(
                f"kafka exited before it was ready{status}; tail of {launch.log}:\n{log_tail(launch.log)}"
            )
        if time.monotonic() > deadline:
            raise InfraError(
                f"kafka not ready after {KAFKA_READY_TIMEOUT_S:.0f}s; tail of {launch.log}:\n{log_tail(launch.log)}"
            )
        time.sleep(0.25)
    if launch.proc is None:
        return "already running"
    kafka_quick_smoke(p)
    return "started"


def kafka_quick_smoke(p: Profile) -> None:
    """A real metadata + produce/consume round trip with aiokafka, when the uv venv has it."""
    if not VENV_PYTHON.exists():
        return
    probe = subprocess.run(  # noqa: S603
        [str(VENV_PYTHON), "-c", "import aiokafka"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return
    run([str(VENV_PYTHON), str(KAFKA_SMOKE), "--quick", "--bootstrap", f"{HOST}:{p.kafka_port}"], cwd=REPO_ROOT)


def kafka_down(p: Profile) -> bool:
    pid = kafka_pid(p)
    if pid is None:
        kafka_pidfile(p).unlink(missing_ok=True)
        return False
    terminate(pid, str(p.kafka_dir / "server.properties"), KAFKA_STOP_TIMEOUT_S)
    kafka_pidfile(p).unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------- commands


def cmd_up(p: Profile) -> int:
    if not shutil.which("redis-server"):  # check before the JVM is started
        raise InfraError("redis-server not found: run scripts/bootstrap.sh")
    pg_bin_dir()  # raises with the same hint
    with file_lock(p.root / ".lock"):
        launch = kafka_start(p)  # the JVM boots while postgres and redis start
        try:
            say(f"postgres  {pg_up(p)} on {HOST}:{p.pg_port} (pid {pg_pid(p)})")
            say(f"redis     {redis_up(p)} on {HOST}:{p.redis_port} (pid {redis_pid(p)})")
            say(f"kafka     {kafka_wait(p, launch)} on {HOST}:{p.kafka_port} (pid {kafka_pid(p)})")
        except BaseException:
            if launch.proc is not None and launch.proc.poll() is None and not kafka_healthy(p):
                kafka_down(p)
            raise
    return 0


def cmd_down(p: Profile) -> int:
    with file_lock(p.root / ".lock"):
        for name, stop in (("kafka", kafka_down), ("redis", redis_down), ("postgres", pg_down)):
            say(f"{name:<9} {'stopped' if stop(p) else 'was not running'}")
    return 0


def cmd_status(p: Profile) -> int:
    checks = [
        ("postgres", pg_healthy(p), p.pg_port, pg_pid(p)),
        ("redis", redis_healthy(p), p.redis_port, redis_pid(p)),
        ("kafka", kafka_healthy(p), p.kafka_port, kafka_pid(p)),
    ]
    for name, healthy, port, pid in checks:
        detail = f"profile {p.name}"
        if not healthy and pid:
            detail += " (process alive but not answering)"
        say(status_line(name, healthy, port, pid, detail))
    return 0 if all(healthy for _, healthy, _, _ in checks) else 1


def cmd_reset(p: Profile) -> int:
    cmd_down(p)
    for d in (p.pg_dir, p.redis_dir, p.kafka_dir):
        shutil.rmtree(d, ignore_errors=True)
    say(f"reset     removed {p.root}/{{pg,redis,kafka}}")
    return 0


def cmd_env(p: Profile, export: bool) -> int:
    prefix = "export " if export else ""
    for key, value in profile_env(p.name).items():
        say(f"{prefix}{key}={shlex.quote(value)}")
    return 0


def cmd_fetch_kafka() -> int:
    version = kafka_version()
    say(f"kafka     {version} jars in {fetch_kafka(version)}")
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Eva local infrastructure (PostgreSQL, Redis, Kafka).")
    parser.add_argument("command", choices=["up", "down", "status", "reset", "env", "fetch-kafka"])
    parser.add_argument("--profile", choices=sorted(PROFILE_PORTS), default="dev")
    parser.add_argument("--export", action="store_true", help="env: prefix lines with `export `")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "fetch-kafka":
            return cmd_fetch_kafka()
        profile = load_profile(args.profile)
        if args.command == "env":
            return cmd_env(profile, args.export)
        commands = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "reset": cmd_reset}
        return commands[args.command](profile)
    except InfraError as exc:
        warn(f"infra {args.command} --profile {args.profile}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

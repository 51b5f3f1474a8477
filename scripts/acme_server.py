#!/usr/bin/env python3
"""Let's Encrypt's test ACME server for tests: Pebble, with pebble-challtestsrv as its DNS, both built from the Go
module proxy (scripts/tools.py pins them).

    python3 scripts/acme_server.py install                               # build both once; prints their paths
    python3 scripts/acme_server.py run --http-port N --tls-port N        # an ACME CA on loopback until Ctrl-C

Pebble validates challenges for real: every name resolves to 127.0.0.1 at the DNS stand-in (or to the addresses
given with `AcmeServer.add_a`), HTTP-01 is fetched from that address on `http_port` and TLS-ALPN-01 on `tls_port`,
the ports where the ACME client (the edge) listens. Pebble's own HTTPS (the directory and the management API) is
signed by the test CA in its module source (test/certs/pebble.minica.pem); the CA that signs the certificates it
issues is generated at each start and read from the management API (`root_pem`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import processes  # noqa: E402  (scripts/processes.py)
import tools  # noqa: E402  (scripts/tools.py: the pinned tools)

START_TIMEOUT_S = 30.0


class AcmeServerError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Binaries:
    pebble: Path
    challtestsrv: Path
    source: Path  # Pebble's module source (its test CA and the certificate of its own listeners)

    @property
    def ca_bundle(self) -> Path:
        return self.source / "test" / "certs" / "pebble.minica.pem"


@dataclass(frozen=True, slots=True)
class AcmeServer:
    directory_url: str  # the ACME directory (HTTPS, signed by `ca_bundle`)
    management_url: str  # Pebble's management API: its roots and intermediates
    dns_address: str  # host:port of the DNS stand-in
    dns_management_url: str  # the DNS stand-in's management API
    ca_bundle: Path  # trust this to talk to Pebble itself

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def root_pem(self) -> str:
        """The root CA of the certificates Pebble issues (new at every start of Pebble)."""
        with urllib.request.urlopen(f"{self.management_url}/roots/0", context=self._context(), timeout=5) as answer:
            return str(answer.read().decode())

    def add_a(self, host: str, addresses: Sequence[str]) -> None:
        """Answer `host` with these IPv4 addresses (instead of 127.0.0.1)."""
        body = json.dumps({"host": host, "addresses": list(addresses)}).encode()
        request = urllib.request.Request(f"{self.dns_management_url}/add-a", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
            if answer.status != 200:
                raise AcmeServerError(f"add-a {host}: HTTP {answer.status}")


def install(*, log: bool = True) -> Binaries:
    try:
        return Binaries(
            pebble=tools.go_install(tools.PEBBLE, log=log),
            challtestsrv=tools.go_install(tools.PEBBLE_CHALLTESTSRV, log=log),
            source=tools.go_source(tools.PEBBLE_SOURCE),
        )
    except tools.ToolError as error:
        raise AcmeServerError(f"pebble: {error}") from error


def pebble_config(binaries: Binaries, *, listen: int, management: int, http_port: int, tls_port: int,
                  validity_s: int) -> dict[str, object]:
    certs = binaries.source / "test" / "certs" / "localhost"
    return {
        "pebble": {
            "listenAddress": f"127.0.0.1:{listen}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(certs / "cert.pem"),
            "privateKey": str(certs / "key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "retryAfter": {"authz": 1, "order": 1},
            "profiles": {"default": {"description": "Eva's tests", "validityPeriod": validity_s}},
        }
    }


def _answers(url: str, context: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2):  # noqa: S310 - loopback
            return True
    except urllib.error.HTTPError:
        return True  # it answers
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running(binaries: Binaries, folder: Path, *, http_port: int, tls_port: int,
            validity_s: int = 7_776_000) -> Iterator[AcmeServer]:
    """Pebble and its DNS on free loopback ports until the block ends; certificates last `validity_s` seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    listen, management, dns, dns_management = (processes.free_port() for _ in range(4))
    config = folder / "pebble-config.json"
    config.write_text(json.dumps(pebble_config(binaries, listen=listen, management=management, http_port=http_port,
                                               tls_port=tls_port, validity_s=validity_s)))
    dns_log, pebble_log = folder / "challtestsrv.log", folder / "pebble.log"
    server = AcmeServer(
        directory_url=f"https://127.0.0.1:{listen}/dir",
        management_url=f"https://127.0.0.1:{management}",
        dns_address=f"127.0.0.1:{dns}",
        dns_management_url=f"http://127.0.0.1:{dns_management}",
        ca_bundle=binaries.ca_bundle,
    )
    dns_argv = [str(binaries.challtestsrv), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                "-dnsserver", server.dns_address, "-management", f"127.0.0.1:{dns_management}",
                "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""]
    # No random sleep before validations, no nonces refused on purpose: the tests wait for real work only.
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    with processes.started(dns_argv, log_path=dns_log, env=env) as dns_process:
        processes.wait_until(lambda: _answers(server.dns_management_url, None), process=dns_process,
                             what="pebble-challtestsrv", log_path=dns_log, timeout=START_TIMEOUT_S)
        pebble_argv = [str(binaries.pebble), "-config", str(config), "-dnsserver", server.dns_address]
        with processes.started(pebble_argv, log_path=pebble_log, env=env, cwd=folder) as pebble:
            context = ssl.create_default_context(cafile=str(binaries.ca_bundle))
            processes.wait_until(lambda: _answers(server.directory_url, context), process=pebble, what="pebble",
                                 log_path=pebble_log, timeout=START_TIMEOUT_S)
            yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="build pebble and pebble-challtestsrv once and print their paths")
    run = commands.add_parser("run", help="serve an ACME CA on loopback until Ctrl-C")
    run.add_argument("--http-port", type=int, required=True, help="where HTTP-01 challenges are fetched")
    run.add_argument("--tls-port", type=int, required=True, help="where TLS-ALPN-01 challenges are answered")
    args = parser.parse_args(argv)
    try:
        binaries = install()
        if args.command == "install":
            sys.stdout.write(f"{binaries.pebble}\n{binaries.challtestsrv}\n")
            return 0
        with tempfile.TemporaryDirectory(prefix="eva-pebble-") as folder, \
                running(binaries, Path(folder), http_port=args.http_port, tls_port=args.tls_port) as server:
            sys.stdout.write(f"ACME directory {server.directory_url} (trust {server.ca_bundle}); DNS "
                             f"{server.dns_address}; issuing root: {server.management_url}/roots/0 (Ctrl-C stops)\n")
            sys.stdout.flush()
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    except (AcmeServerError, processes.ProcessError) as error:
        sys.stderr.write(f"acme_server: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

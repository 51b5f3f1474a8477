"""`EVA_SUPER_ADMIN_PASSWORD=P python -m auth_service.seed_super_admin --email E` (or `--password-stdin`, the
password on standard input): the platform tenant (slug `platform`, created through the tenant service when missing)
and a super admin in it. Idempotent. Reads the same EVA_* environment as the service (auth's database, signing
keys, EVA_TENANT_GRPC_TARGET) and writes one JSON line to stdout: {"userId": ..., "tenantId": ..., "created":
true|false}. There is no `--password`: a secret on a command line is readable by every local user (`ps`), and a
password beginning with '-' would be taken for an option."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from eva_common.db import create_engine, session_factory
from eva_common.errors import DomainError
from eva_common.grpc.client import create_channel
from eva_common.logging import configure_logging
from eva_common.runtime import load_settings

from auth_service.audit import AuditLog
from auth_service.clients import GrpcTenantDirectory
from auth_service.main import key_ring, token_issuer
from auth_service.passwords import Passwords
from auth_service.settings import Settings, get_settings
from auth_service.tokens import SelfServiceToken
from auth_service.users import UserAdmin

PASSWORD_ENV = "EVA_SUPER_ADMIN_PASSWORD"  # noqa: S105 - a variable name


class _NoRevocations:
    async def revoke(self, subject: str, *, at_ms: int | None = None) -> int:  # seeding never revokes
        raise AssertionError("seeding does not revoke tokens")


async def seed(settings: Settings, *, email: str, password: str, name: str) -> dict[str, object]:
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    channel = create_channel(settings.tenant_grpc_target)
    try:
        sessions = session_factory(engine)
        tokens = token_issuer(settings, key_ring(settings))
        tenants = GrpcTenantDirectory(
            channel=channel, service_token=SelfServiceToken(issuer=tokens, service_name=settings.service_name),
            timeout=max(settings.grpc_deadline_seconds, 10.0),
        )
        users = UserAdmin(
            sessions=sessions, passwords=Passwords(), tenants=tenants, revocations=_NoRevocations(),
            audit_log=AuditLog(sessions=sessions, topic=settings.audit_events_topic),
        )
        user, created = await users.seed_super_admin(email=email, password=password, name=name)
        return {"userId": user.id, "tenantId": user.tenant_id, "created": created}
    finally:
        await channel.close()
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class SeedRequest:
    email: str
    password: str
    name: str


def parse_request(argv: list[str] | None, environ: Mapping[str, str], stdin: TextIO) -> SeedRequest:
    """The command's arguments; the password from EVA_SUPER_ADMIN_PASSWORD, standard input (--password-stdin,
    one line). Never from the command line, where every local user can read it. Exits 2 (argparse) when there is
    none."""
    parser = argparse.ArgumentParser(prog="python -m auth_service.seed_super_admin", description=__doc__,
                                     allow_abbrev=False)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.add_argument("--name", default="Super Admin")
    args = parser.parse_args(argv)
    if args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        password = environ.get(PASSWORD_ENV, "")
    if not password:
        parser.error(f"set {PASSWORD_ENV} or give the password on standard input with --password-stdin")
    return SeedRequest(email=args.email, password=password, name=args.name)


def main(argv: list[str] | None = None) -> int:
    request = parse_request(argv, os.environ, sys.stdin)
    settings = load_settings(get_settings, "auth")
    configure_logging("auth-seed", settings.log_level)
    try:
        result = asyncio.run(seed(settings, email=request.email, password=request.password, name=request.name))
    except DomainError as error:
        sys.stderr.write(f"seeding failed: {error.code}: {error.detail}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

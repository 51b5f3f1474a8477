from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from argon2 import PasswordHasher
from auth_service.audit import AuditLog
from auth_service.domain import PlanLimits, TenantInfo, VerifiedApiKey
from auth_service.passwords import Passwords
from auth_service.service import AuthService
from auth_service.throttle import LoginThrottle
from auth_service.tokens import KeyRing, SigningKey, TokenIssuer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eva_common.errors import DomainError
from eva_common.ratelimit import Decision, Limit


@pytest.fixture(scope="session")
def passwords() -> Passwords:
    # cheap parameters: unit tests check behaviour, not cost
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def ed25519_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@dataclass
class FakeTenantDirectory:
    """Records calls; unit tests assert what reached the tenant service."""

    tenants: dict[str, TenantInfo] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    tokens_seen: list[str | None] = field(default_factory=list)
    api_keys: dict[str, VerifiedApiKey] = field(default_factory=dict)
    api_key_error: DomainError | None = None
    keys_asked: list[str] = field(default_factory=list)
    seats: int = 3

    async def create_tenant(self, *, name: str, platform: bool = False) -> TenantInfo:
        self.created.append(name)
        slug = "platform" if platform else name.lower()
        tenant = TenantInfo(id=f"t{len(self.created)}", name=name, slug=slug, status="active", plan="starter",
                            timezone="UTC", locale="en", created_at="2026-01-01T00:00:00+00:00")
        self.tenants[tenant.id] = tenant
        return tenant

    async def get_tenant(self, *, tenant_id: str, token: str | None = None) -> TenantInfo:
        self.tokens_seen.append(token)
        return self.tenants[tenant_id]

    async def find_by_slug(self, *, slug: str) -> TenantInfo | None:
        return next((tenant for tenant in self.tenants.values() if tenant.slug == slug), None)

    async def get_plan_limits(self, *, tenant_id: str) -> PlanLimits:
        return PlanLimits(tenant_id=tenant_id, plan="starter", seats=self.seats)

    async def verify_api_key(self, *, api_key: str) -> VerifiedApiKey:
        self.keys_asked.append(api_key)
        if self.api_key_error is not None:
            raise self.api_key_error
        return self.api_keys.get(api_key, VerifiedApiKey(False, "", "", (), ""))


@dataclass
class FakeLimiter:
    """Counts hits in memory, like eva_common.ratelimit.RateLimiter counts them in Redis."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    resets: list[tuple[str, str]] = field(default_factory=list)

    async def hit(self, name: str, key: str, limit: Limit, *, now: float | None = None) -> Decision:
        count = self.counts.get((name, key), 0) + 1
        self.counts[(name, key)] = count
        if count <= limit.requests:
            return Decision(True, count, 0)
        return Decision(False, count, 42)

    async def reset(self, name: str, key: str, limit: Limit | None = None, *, now: float | None = None) -> None:
        self.resets.append((name, key))
        self.counts.pop((name, key), None)


class NoDatabase:
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the database must not be reached")


@pytest.fixture
def limiter() -> FakeLimiter:
    return FakeLimiter()


@pytest.fixture
def token_keys() -> KeyRing:
    return KeyRing([SigningKey(kid="k1", private_key=Ed25519PrivateKey.generate())])


@pytest.fixture
def service(passwords: Passwords, tenant_directory: Any, limiter: FakeLimiter, token_keys: KeyRing) -> AuthService:
    """The auth use cases with fakes around them and no database (a test that reaches it fails)."""
    tokens = TokenIssuer(keys=token_keys, issuer="eva-auth", audience="eva", access_ttl_seconds=900,
                         service_ttl_seconds=300, api_key_ttl_seconds=300)
    return AuthService(
        sessions=NoDatabase(),  # type: ignore[arg-type]
        passwords=passwords, tokens=tokens, tenants=tenant_directory,
        throttle=LoginThrottle(limiter=limiter, account_limit=Limit(5, 900), ip_limit=Limit(30, 300)),
        audit_log=AuditLog(sessions=NoDatabase(), topic="audit.test"),  # type: ignore[arg-type]
        service_clients={"webhook-ingest": "ingest-client-secret-1234"}, refresh_ttl_seconds=3600,
    )


@pytest.fixture
def tenant_directory() -> FakeTenantDirectory:
    return FakeTenantDirectory()

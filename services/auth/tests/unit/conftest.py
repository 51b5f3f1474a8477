from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from argon2 import PasswordHasher
from auth_service.domain import TenantInfo
from auth_service.passwords import Passwords
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


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

    async def create_tenant(self, *, name: str) -> TenantInfo:
        self.created.append(name)
        tenant = TenantInfo(id=f"t{len(self.created)}", name=name, slug=name.lower(), status="active",
                            plan="starter", timezone="UTC", locale="en", created_at="2026-01-01T00:00:00+00:00")
        self.tenants[tenant.id] = tenant
        return tenant

    async def get_tenant(self, *, tenant_id: str, token: str | None = None) -> TenantInfo:
        self.tokens_seen.append(token)
        return self.tenants[tenant_id]

    async def find_by_slug(self, *, slug: str) -> TenantInfo | None:
        return next((tenant for tenant in self.tenants.values() if tenant.slug == slug), None)


@pytest.fixture
def tenant_directory() -> FakeTenantDirectory:
    return FakeTenantDirectory()

"""Who may call what: the checks run before any database access, so a factory that fails if used proves it."""

import os
from typing import Any

import pytest
from eva_common.auth import Principal
from eva_common.errors import PermissionDenied
from tenant_service.crypto import LookupHasher, SecretBox
from tenant_service.domain import CredentialsInput
from tenant_service.service import TenantService


class NoDatabase:
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the database must not be reached")


def _service() -> TenantService:
    return TenantService(
        sessions=NoDatabase(),  # type: ignore[arg-type]
        secrets=SecretBox(keys={"k1": os.urandom(32)}, active_key_id="k1"),
        lookup=LookupHasher(key=os.urandom(32)),
    )


def _user(role: str) -> Principal:
    return Principal(subject="u1", kind="user", role=role, tenant_id="t1", token="tok", token_id="j",
                     issued_at=0, expires_at=0)


SERVICE = Principal(subject="service:ingest", kind="service", role="service", tenant_id=None, token="tok",
                    token_id="j", issued_at=0, expires_at=0)
CREDENTIALS = CredentialsInput(phone_number_id="123", waba_id="456", access_token="a" * 20,
                               app_secret="b" * 20, verify_token="c" * 20)


async def test_only_services_create_tenants() -> None:
    with pytest.raises(PermissionDenied) as raised:
        await _service().create_tenant(principal=_user("super_admin"), name="Hotel", timezone="", locale="")
    assert raised.value.code == "SERVICE_ONLY"


@pytest.mark.parametrize("principal", [_user("attendant"), SERVICE])
async def test_credentials_need_a_tenant_admin(principal: Principal) -> None:
    with pytest.raises(PermissionDenied):
        await _service().put_whatsapp_credentials(principal=principal, data=CREDENTIALS)
    with pytest.raises(PermissionDenied):
        await _service().get_whatsapp_credentials(principal=principal)


@pytest.mark.parametrize("role", ["attendant", "admin", "super_admin"])
async def test_secret_lookups_are_for_services_only(role: str) -> None:
    service, user = _service(), _user(role)
    with pytest.raises(PermissionDenied):
        await service.resolve_phone_number(principal=user, phone_number_id="123")
    with pytest.raises(PermissionDenied):
        await service.check_verify_token(principal=user, verify_token="verify-token")
    with pytest.raises(PermissionDenied):
        await service.get_sending_credentials(principal=user, tenant_id="t1")
    with pytest.raises(PermissionDenied):
        await service.get_tenant_by_slug(principal=user, slug="hotel")


async def test_a_service_must_name_its_tenant() -> None:
    with pytest.raises(PermissionDenied) as raised:
        await _service().get_tenant(principal=SERVICE, tenant_id="")
    assert raised.value.code == "TENANT_REQUIRED"

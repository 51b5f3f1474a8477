"""Who may call what: the checks run before any database access, so a factory that fails if used proves it."""

import os
from typing import Any

import pytest
from eva_common.auth import Principal
from eva_common.errors import FailedPrecondition, PermissionDenied
from tenant_service.api_keys.domain import ApiKeyInput
from tenant_service.api_keys.service import ApiKeyService
from tenant_service.audit_log.service import AuditLogService
from tenant_service.crypto import LookupHasher, SecretBox
from tenant_service.domain import CredentialsInput, TenantChanges
from tenant_service.service import TenantService
from tenant_service.usage.service import UsageService


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


# --------------------------------------------------------------------------- issue 3: administration, keys, usage


def _api_key(scopes: tuple[str, ...] = ("usage:read",)) -> Principal:
    return Principal(subject="apikey:k1", kind="api_key", role="api_key", tenant_id="t1", token="tok",
                     token_id="j", issued_at=0, expires_at=0, scopes=scopes)


def _key_service() -> ApiKeyService:
    class NoRedis:
        async def revoke(self, subject: str, *, at_ms: int | None = None) -> int:
            raise AssertionError("redis must not be reached")

    return ApiKeyService(sessions=NoDatabase(), lookup=LookupHasher(key=os.urandom(32)),  # type: ignore[arg-type]
                         revocations=NoRedis())


@pytest.mark.parametrize(("principal", "code"), [
    (_user("attendant"), "FORBIDDEN_ROLE"), (_user("admin"), "FORBIDDEN_ROLE"), (SERVICE, "USER_ONLY"),
    (_api_key(), "API_KEY_NOT_ALLOWED"),
])
async def test_tenant_administration_is_for_super_admins(principal: Principal, code: str) -> None:
    service = _service()
    calls = (
        service.list_tenants(principal=principal, status="", q="", limit=0, cursor=""),
        service.admin_create_tenant(principal=principal, name="Hotel", plan="", timezone="", locale=""),
        service.set_tenant_status(principal=principal, tenant_id="t2", status="suspended"),
    )
    for call in calls:
        with pytest.raises(PermissionDenied) as raised:
            await call
        assert raised.value.code == code


@pytest.mark.parametrize(("principal", "code"), [
    (_user("attendant"), "FORBIDDEN_ROLE"), (SERVICE, "USER_ONLY"), (_api_key(), "API_KEY_NOT_ALLOWED"),
])
async def test_tenant_settings_keys_and_audit_need_a_tenant_admin(principal: Principal, code: str) -> None:
    keys = _key_service()
    audit = AuditLogService(sessions=NoDatabase())  # type: ignore[arg-type]
    calls = (
        _service().update_tenant(principal=principal, changes=TenantChanges(name="New name")),
        keys.create(principal=principal, data=ApiKeyInput(name="k", scopes=("usage:read",))),
        keys.list_keys(principal=principal, include_revoked=False),
        keys.revoke(principal=principal, key_id="k1"),
        audit.list_logs(principal=principal, actor_id="", action="", target_type="", target_id="", from_time="",
                        to_time="", limit=0, cursor=""),
    )
    for call in calls:
        with pytest.raises(PermissionDenied) as raised:
            await call
        assert raised.value.code == code


@pytest.mark.parametrize("principal", [_user("admin"), _user("super_admin"), _api_key(("messages:send",))])
async def test_api_keys_are_verified_for_services_only(principal: Principal) -> None:
    with pytest.raises(PermissionDenied) as raised:
        await _key_service().verify(principal=principal, api_key="eva_abcdefgh_" + "x" * 43)
    assert raised.value.code == "SERVICE_ONLY"


async def test_malformed_keys_are_refused_before_any_lookup() -> None:
    for key in ("", "eva_ABCDEFGH_" + "x" * 43, "eva_abcdefgh_short", "sk_live_" + "x" * 50):
        assert (await _key_service().verify(principal=SERVICE, api_key=key)).valid is False


async def test_usage_needs_the_scope_for_api_keys_and_a_named_tenant_for_services() -> None:
    usage = UsageService(sessions=NoDatabase())  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied) as raised:
        await usage.get_usage(principal=_api_key(("messages:send",)), tenant_id="", from_date="", to_date="")
    assert raised.value.code == "SCOPE_MISSING"
    with pytest.raises(PermissionDenied) as raised:
        await usage.get_plan_limits(principal=_api_key(("messages:read",)), tenant_id="")
    assert raised.value.code == "SCOPE_MISSING"
    with pytest.raises(PermissionDenied) as raised:
        await usage.get_plan_limits(principal=SERVICE, tenant_id="")
    assert raised.value.code == "TENANT_REQUIRED"


async def test_super_admins_cannot_suspend_their_own_tenant() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        await _service().set_tenant_status(principal=_user("super_admin"), tenant_id="t1", status="suspended")
    assert raised.value.code == "CANNOT_SUSPEND_OWN_TENANT"

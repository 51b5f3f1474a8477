"""The rules of user management that need no database: who may manage, which tenant a call acts on, which roles
may be granted, seats, and the mapping of a partial update from its proto."""


import pytest
from auth_service.domain import NewUser, PlanLimits, UserChanges, check_role
from auth_service.grpc_server import client_info, user_changes
from auth_service.users import check_grant, check_seats, named_tenant_scope, require_manager
from eva.auth.v1 import auth_pb2
from eva_common.audit import RequestMeta
from eva_common.auth import Principal
from eva_common.errors import InvalidArgument, PermissionDenied, ResourceExhausted
from eva_common.identity import role_rank


def principal(role: str, *, kind: str = "user", tenant: str | None = "tenant-a") -> Principal:
    return Principal(subject=f"{kind}-1", kind=kind, role=role, tenant_id=tenant, token="t",  # type: ignore[arg-type]
                     token_id="j", issued_at=0, expires_at=0)


ADMIN, ATTENDANT, SUPER = principal("admin"), principal("attendant"), principal("super_admin", tenant="platform")
SERVICE = principal("service", kind="service", tenant=None)
API_KEY = principal("api_key", kind="api_key")


def test_role_ranks() -> None:
    assert role_rank("attendant") < role_rank("admin") < role_rank("super_admin")
    assert role_rank("service") < role_rank("attendant") and role_rank("api_key") < role_rank("attendant")
    assert check_role("admin") == "admin"
    with pytest.raises(InvalidArgument) as raised:
        check_role("owner")
    assert raised.value.code == "INVALID_ROLE"


@pytest.mark.parametrize(("caller", "code"), [(ATTENDANT, "FORBIDDEN_ROLE"), (SERVICE, "FORBIDDEN_ROLE"),
                                              (API_KEY, "API_KEY_NOT_ALLOWED")])
def test_only_admins_manage_users(caller: Principal, code: str) -> None:
    with pytest.raises(PermissionDenied) as raised:
        require_manager(caller)
    assert raised.value.code == code


def test_admins_and_super_admins_manage_users() -> None:
    require_manager(ADMIN)
    require_manager(SUPER)


def test_tenant_scope_of_lists_and_creations() -> None:
    assert named_tenant_scope(ADMIN, "") == "tenant-a"
    assert named_tenant_scope(ADMIN, "tenant-a") == "tenant-a"
    assert named_tenant_scope(ATTENDANT, "") == "tenant-a"
    assert named_tenant_scope(SUPER, "tenant-b") == "tenant-b"
    assert named_tenant_scope(SUPER, "") == "platform"
    assert named_tenant_scope(SERVICE, "tenant-b") == "tenant-b"
    for caller in (ADMIN, ATTENDANT):
        with pytest.raises(PermissionDenied) as raised:
            named_tenant_scope(caller, "tenant-b")
        assert raised.value.code == "FORBIDDEN_ROLE"
    with pytest.raises(PermissionDenied) as raised:
        named_tenant_scope(SERVICE, "")
    assert raised.value.code == "TENANT_REQUIRED"
    with pytest.raises(PermissionDenied) as raised:
        named_tenant_scope(API_KEY, "")
    assert raised.value.code == "API_KEY_NOT_ALLOWED"


def test_nobody_grants_a_role_above_their_own() -> None:
    check_grant(ADMIN, role="admin", tenant_id="tenant-a")
    check_grant(ADMIN, role="attendant", tenant_id="tenant-a")
    check_grant(SUPER, role="super_admin", tenant_id="platform")
    check_grant(SUPER, role="admin", tenant_id="tenant-b")
    for caller, role, tenant in ((ADMIN, "super_admin", "tenant-a"), (ATTENDANT, "admin", "tenant-a"),
                                 (SUPER, "super_admin", "tenant-b")):
        with pytest.raises(PermissionDenied) as raised:
            check_grant(caller, role=role, tenant_id=tenant)
        assert raised.value.code == "ROLE_NOT_ALLOWED", (caller.role, role, tenant)


def test_seats() -> None:
    check_seats(PlanLimits("t", "starter", 3), active_users=2)
    check_seats(PlanLimits("t", "unlimited", 0), active_users=500)
    with pytest.raises(ResourceExhausted) as raised:
        check_seats(PlanLimits("t", "starter", 3), active_users=3)
    assert raised.value.code == "SEAT_LIMIT_REACHED" and raised.value.http_status == 429


def test_partial_update_keeps_unset_fields_unset() -> None:
    changes = user_changes(auth_pb2.UpdateUserRequest(user_id="u", active=False, password="new long password"))
    assert changes == UserChanges(active=False, password="new long password")
    assert changes.fields() == ["active", "password"]
    assert "new long password" not in repr(changes)
    assert user_changes(auth_pb2.UpdateUserRequest(user_id="u", name="", role="admin")) == UserChanges(
        name="", role="admin")
    assert "secret" not in repr(NewUser(name="A", email="a@h.com", password="secret password"))


class FakeContext:
    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return self._metadata


def test_client_info_from_gateway_metadata() -> None:
    info = client_info(FakeContext([("x-client-ip", " 2001:DB8::1 "), ("x-user-agent", "Mozilla/5.0 " + "x" * 900)]))
    assert info.ip == "2001:db8::1" and info.user_agent is not None and len(info.user_agent) == 512
    assert client_info(FakeContext([])) == RequestMeta(ip=None, user_agent=None, request_id=None)
    assert client_info(FakeContext([("x-client-ip", "not-an-ip" * 20)])).ip == ("not-an-ip" * 20)[:64]

"""The platform tenant and its super admin, made by `python -m auth_service.seed_super_admin` (idempotent), and
what a super admin may do across tenants that an admin may not."""

import json

import grpc
import pytest
from eva.auth.v1 import auth_pb2
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration


async def test_seeding_makes_the_platform_and_its_super_admin_once(stack, super_admin) -> None:
    # the session fixture ran it once already
    code, out, err = await stack.seed("--email", super_admin.email.upper(),
                                      env={**stack.service_env(), "EVA_SUPER_ADMIN_PASSWORD": "ignored on re-runs"})
    assert code == 0, err
    assert json.loads(out) == {"userId": super_admin.user_id, "tenantId": super_admin.tenant_id, "created": False}
    assert super_admin.password not in err and "ignored on re-runs" not in err
    platform = await stack.tenant_stub.GetTenantBySlug(tenant_pb2.GetTenantBySlugRequest(slug="platform"),
                                                       metadata=stack.bearer(await stack.service_token()))
    assert platform.id == super_admin.tenant_id and platform.name == "Platform"
    me = await stack.auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=stack.bearer(super_admin.session.access_token))
    assert me.user.role == "super_admin" and me.tenant.slug == "platform"
    # the email is unique, so no slug is needed either
    assert (await stack.login(super_admin.email, super_admin.password)).user.id == super_admin.user_id


async def test_seeding_refuses_a_weak_password_and_needs_one(stack) -> None:
    code, _, err = await stack.seed("--email", stack.email("weak-root"),
                                    env={**stack.service_env(), "EVA_SUPER_ADMIN_PASSWORD": "short"})
    assert code == 1 and "WEAK_PASSWORD" in err
    code, _, err = await stack.seed("--email", stack.email("no-password"))
    assert code == 2 and "EVA_SUPER_ADMIN_PASSWORD" in err


async def test_a_super_admin_manages_the_users_of_any_tenant(stack, super_admin) -> None:
    root = stack.bearer(super_admin.session.access_token)
    hotel = await stack.register(tenant_name="Supervised Hotel")
    users = await stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(tenant_id=hotel.tenant.id), metadata=root)
    assert [user.id for user in users.items] == [hotel.user.id]
    admin_two = await stack.create_user(super_admin.session.access_token, role="admin", tenant_id=hotel.tenant.id)
    assert admin_two.tenant_id == hotel.tenant.id
    got = await stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=hotel.user.id), metadata=root)
    assert got.tenant_id == hotel.tenant.id
    renamed = await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=hotel.user.id, name="Renamed"),
                                               metadata=root)
    assert renamed.name == "Renamed"
    await stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=admin_two.id), metadata=root)
    last = await stack.failure(stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=hotel.user.id),
                                                          metadata=root))
    assert last == (grpc.StatusCode.FAILED_PRECONDITION, "LAST_ADMIN")  # the rule binds super admins too
    # super_admin exists only in the platform tenant
    refused = await stack.failure(stack.create_user(super_admin.session.access_token, role="super_admin",
                                                    tenant_id=hotel.tenant.id))
    assert refused == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    colleague = await stack.create_user(super_admin.session.access_token, role="super_admin")
    assert colleague.tenant_id == super_admin.tenant_id and colleague.role == "super_admin"


async def test_a_hotel_admin_cannot_reach_the_platform(stack, super_admin) -> None:
    hotel = await stack.register(tenant_name="Curious Hotel")
    for call in (
        stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=super_admin.user_id),
                                metadata=stack.bearer(hotel.access_token)),
        stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=super_admin.user_id, active=False),
                                   metadata=stack.bearer(hotel.access_token)),
    ):
        assert await stack.failure(call) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    named = await stack.failure(stack.auth_stub.ListUsers(
        auth_pb2.ListUsersRequest(tenant_id=super_admin.tenant_id), metadata=stack.bearer(hotel.access_token)))
    assert named == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")


async def test_a_failed_login_for_an_unknown_email_is_the_platforms(stack, super_admin) -> None:
    ghost = stack.email("ghost")
    assert (await stack.failure(stack.login(ghost, "wrong horse battery", ip="192.0.2.99"))).code == (
        "INVALID_CREDENTIALS")

    def unknown(event) -> bool:
        return (event.tenant_id == super_admin.tenant_id and event.data["action"] == "auth.login_failed"
                and event.data["ip"] == "192.0.2.99")

    [(key, event)] = await stack.audit.wait_for(unknown)
    assert key == super_admin.tenant_id.encode() and event.data["targetId"] is None
    assert event.data["details"] == {"reason": "unknown_account", "emailDomain": "hotel.test"}
    assert ghost.split("@")[0] not in event.to_bytes().decode()

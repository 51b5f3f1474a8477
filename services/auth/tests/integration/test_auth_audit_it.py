"""Audit entries through auth's transactional outbox, read back from the Kafka topic: type audit.recorded, the
tenant as key and tenantId, the actor, the client's address, user agent and request id, and never a secret."""

import uuid

import grpc
import pytest
from eva.auth.v1 import auth_pb2

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"
NEW_PASSWORD = "another fine passphrase"


def of(tenant_id: str, action: str, target: str | None = None):
    def predicate(event) -> bool:
        return (event.tenant_id == tenant_id and event.data["action"] == action
                and (target is None or event.data["targetId"] == target))

    return predicate


async def test_login_success_and_failure_are_audited_with_the_client(stack) -> None:
    admin = await stack.register(tenant_name="Audit Login Hotel")
    request_id = uuid.uuid4().hex
    await stack.auth_stub.Login(
        auth_pb2.LoginRequest(email=admin.user.email, password=PASSWORD),
        metadata=stack.client_metadata(None, ip="192.0.2.10", user_agent="AuditTest/1.0", request_id=request_id))
    await stack.failure(stack.login(admin.user.email, WRONG, ip="192.0.2.11", user_agent="Guesser/0.1"))
    [(key, ok)] = await stack.audit.wait_for(of(admin.tenant.id, "auth.login"))
    [(_, failed)] = await stack.audit.wait_for(of(admin.tenant.id, "auth.login_failed"))
    assert key == admin.tenant.id.encode() and ok.type == "audit.recorded"
    assert ok.data == {
        "actorType": "user", "actorId": admin.user.id, "action": "auth.login", "targetType": "user",
        "targetId": admin.user.id, "outcome": "success", "ip": "192.0.2.10", "userAgent": "AuditTest/1.0",
        "requestId": request_id, "details": {}}
    assert failed.data["actorType"] == "anonymous" and failed.data["actorId"] is None
    assert failed.data["outcome"] == "failure" and failed.data["targetId"] == admin.user.id
    assert failed.data["ip"] == "192.0.2.11" and failed.data["userAgent"] == "Guesser/0.1"
    assert failed.data["details"] == {"reason": "invalid_credentials", "email": admin.user.email}


async def test_registration_logout_and_refresh_reuse_are_audited(stack) -> None:
    admin = await stack.register(tenant_name="Audit Session Hotel")
    await stack.audit.wait_for(of(admin.tenant.id, "auth.registered", admin.user.id))
    rotated = await stack.auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=admin.refresh_token))
    await stack.end_reuse_grace(admin)
    await stack.failure(stack.auth_stub.Refresh(auth_pb2.RefreshRequest(refresh_token=admin.refresh_token)))
    [(_, reuse)] = await stack.audit.wait_for(of(admin.tenant.id, "auth.refresh_token_reused", admin.user.id))
    assert reuse.data["outcome"] == "failure" and reuse.data["details"]["familyId"]
    session = await stack.login(admin.user.email)
    await stack.auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token=session.refresh_token),
                                 metadata=stack.client_metadata(None, ip="192.0.2.20"))
    [(_, logout)] = await stack.audit.wait_for(of(admin.tenant.id, "auth.logout", admin.user.id))
    assert logout.data["actorType"] == "user" and logout.data["actorId"] == admin.user.id
    assert logout.data["ip"] == "192.0.2.20"
    # logging out again changes nothing and records nothing new
    await stack.auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token=session.refresh_token))
    await stack.auth_stub.Logout(auth_pb2.LogoutRequest(refresh_token=rotated.refresh_token))
    await stack.audit.wait_for(of(admin.tenant.id, "auth.logout"), count=1)
    assert len(stack.audit.matching(of(admin.tenant.id, "auth.logout", admin.user.id))) == 1


async def test_user_changes_are_audited_by_their_actor(stack) -> None:
    admin = await stack.register(tenant_name="Audit Users Hotel")
    meta = stack.client_metadata(admin.access_token, ip="198.51.100.1", user_agent="AdminUI")
    user = await stack.auth_stub.CreateUser(
        auth_pb2.CreateUserRequest(name="Ada", email=stack.email(), password=PASSWORD), metadata=meta)
    await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=user.id, name="Ada B", role="admin"),
                                     metadata=meta)
    await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=user.id, password=NEW_PASSWORD), metadata=meta)
    await stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=user.id), metadata=meta)
    expected = {"user.created": {"role": "attendant", "email": user.email},
                "user.updated": {"fields": ["name", "role"], "name": "Ada B", "role": "admin"},
                "user.password_changed": {},
                "user.deleted": {"email": user.email, "role": "admin"}}
    for action, details in expected.items():
        [(key, event)] = await stack.audit.wait_for(of(admin.tenant.id, action, user.id))
        assert key == admin.tenant.id.encode()
        assert (event.data["actorType"], event.data["actorId"]) == ("user", admin.user.id), action
        assert event.data["ip"] == "198.51.100.1" and event.data["userAgent"] == "AdminUI", action
        assert event.data["details"] == details, action


async def test_no_secret_ever_reaches_the_audit_topic(stack) -> None:
    admin = await stack.register(tenant_name="Audit Secrets Hotel")
    await stack.failure(stack.login(admin.user.email, WRONG))
    user = await stack.create_user(admin.access_token)
    await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=user.id, password=NEW_PASSWORD),
                                     metadata=stack.bearer(admin.access_token))
    await stack.audit.wait_for(of(admin.tenant.id, "user.password_changed", user.id))
    await stack.audit.wait_for(of(admin.tenant.id, "auth.login_failed"))
    hash_rows = await stack.sql(stack.auth_db, "SELECT password_hash FROM users WHERE tenant_id = $1",
                                admin.tenant.id, tenant=admin.tenant.id)
    secrets = [PASSWORD, WRONG, NEW_PASSWORD, admin.access_token, admin.refresh_token,
               *(row["password_hash"] for row in hash_rows)]
    for raw in stack.audit.raw:
        text = raw.decode()
        assert not [secret for secret in secrets if secret in text]


async def test_a_failed_login_for_an_unknown_email_has_no_tenant_to_audit(stack) -> None:
    ghost = stack.email("ghost")
    marker = await stack.register(tenant_name="Audit Marker Hotel")
    assert (await stack.failure(stack.login(ghost, WRONG))).code == "INVALID_CREDENTIALS"
    await stack.failure(stack.login(marker.user.email, WRONG))
    await stack.audit.wait_for(of(marker.tenant.id, "auth.login_failed"))  # written after the ghost's attempt
    assert [event for _, event in stack.audit.events if ghost in event.to_bytes().decode()] == []


async def test_a_throttled_account_is_audited_once_per_window(stack) -> None:
    admin = await stack.register(tenant_name="Audit Throttle Hotel")
    for _ in range(8):
        await stack.failure(stack.login(admin.user.email, WRONG))
    throttled = lambda event: (of(admin.tenant.id, "auth.login_failed")(event)  # noqa: E731
                               and event.data["details"]["reason"] == "throttled")
    await stack.audit.wait_for(throttled)
    await stack.audit.wait_for(of(admin.tenant.id, "auth.login_failed"), count=6)
    assert len(stack.audit.matching(throttled)) == 1
    assert (await stack.failure(stack.login(admin.user.email))).status == grpc.StatusCode.RESOURCE_EXHAUSTED

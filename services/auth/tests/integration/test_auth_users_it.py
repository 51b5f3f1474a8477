"""Users over gRPC against the real database and the real tenant service (plan seats): every rule of user
management, each with the call that succeeds next to the one that is refused."""

import asyncio

import grpc
import pytest
from eva.auth.v1 import auth_pb2
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def meta(stack, session):
    return stack.bearer(session.access_token)


async def list_all(stack, session, **filters) -> list[auth_pb2.User]:
    request = auth_pb2.ListUsersRequest(limit=100, **filters)
    return list((await stack.auth_stub.ListUsers(request, metadata=meta(stack, session))).items)


async def seats(stack, admin) -> int:
    limits = await stack.tenant_stub.GetPlanLimits(tenant_pb2.GetPlanLimitsRequest(), metadata=meta(stack, admin))
    return int(limits.seats)


async def test_admin_manages_a_user_from_creation_to_deletion(stack) -> None:
    admin = await stack.register(tenant_name="Lifecycle Inn")
    email = stack.email("ada")
    created = await stack.create_user(admin.access_token, email=email.upper(), name="  Ada   Lovelace ")
    assert (created.email, created.name, created.role, created.active) == (email, "Ada Lovelace", "attendant", True)
    assert created.tenant_id == admin.tenant.id and created.created_at
    got = await stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=created.id), metadata=meta(stack, admin))
    assert got == created
    assert {user.id for user in await list_all(stack, admin)} == {admin.user.id, created.id}

    updated = await stack.auth_stub.UpdateUser(
        auth_pb2.UpdateUserRequest(user_id=created.id, name="Ada King", role="admin", email=stack.email("king")),
        metadata=meta(stack, admin))
    assert updated.name == "Ada King" and updated.role == "admin" and updated.email != email
    untouched = await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=created.id),
                                                 metadata=meta(stack, admin))
    assert untouched == updated  # nothing named, nothing changed

    await stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=created.id), metadata=meta(stack, admin))
    missing = await stack.failure(stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=created.id),
                                                          metadata=meta(stack, admin)))
    assert missing == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    assert [user.id for user in await list_all(stack, admin, include_inactive=True)] == [admin.user.id]
    again = await stack.failure(stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=created.id),
                                                           metadata=meta(stack, admin)))
    assert again == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    # the deleted user's email is free again, and the row is kept (soft delete)
    reused = await stack.create_user(admin.access_token, email=updated.email)
    assert reused.id != created.id
    rows = await stack.sql(stack.auth_db, "SELECT deleted_at IS NOT NULL AS deleted, active FROM users WHERE id = $1",
                           created.id, tenant=admin.tenant.id)
    assert rows == [{"deleted": True, "active": False}]


async def test_attendants_list_and_read_but_do_not_manage(stack) -> None:
    admin = await stack.register(tenant_name="Front Desk Hotel")
    attendant = await stack.user_session(admin)
    users = await list_all(stack, attendant)
    assert {user.id for user in users} == {admin.user.id, attendant.user.id}
    got = await stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=admin.user.id), metadata=meta(stack, attendant))
    assert got.id == admin.user.id
    refusals = [
        stack.auth_stub.CreateUser(auth_pb2.CreateUserRequest(name="X", email=stack.email(), password=PASSWORD),
                                   metadata=meta(stack, attendant)),
        stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=admin.user.id, name="Hacked"),
                                   metadata=meta(stack, attendant)),
        stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=attendant.user.id, role="admin"),
                                   metadata=meta(stack, attendant)),
        stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=admin.user.id), metadata=meta(stack, attendant)),
    ]
    for call in refusals:
        assert await stack.failure(call) == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")
    assert (await stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=admin.user.id),
                                          metadata=meta(stack, admin))).name == "Ana Owner"


async def test_nobody_grants_a_role_above_their_own(stack) -> None:
    admin = await stack.register(tenant_name="Rank Hotel")
    refused = await stack.failure(stack.create_user(admin.access_token, role="super_admin"))
    assert refused == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    attendant = await stack.create_user(admin.access_token)
    promote = await stack.failure(stack.auth_stub.UpdateUser(
        auth_pb2.UpdateUserRequest(user_id=attendant.id, role="super_admin"), metadata=meta(stack, admin)))
    assert promote == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    invalid = await stack.failure(stack.create_user(admin.access_token, role="owner"))
    assert invalid == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ROLE")
    admin_two = await stack.create_user(admin.access_token, role="admin")  # up to your own role is fine
    assert admin_two.role == "admin"


async def test_the_last_active_admin_stays(stack) -> None:
    admin = await stack.register(tenant_name="Last Admin Hotel")
    for request in (auth_pb2.UpdateUserRequest(user_id=admin.user.id, role="attendant"),
                    auth_pb2.UpdateUserRequest(user_id=admin.user.id, active=False)):
        refused = await stack.failure(stack.auth_stub.UpdateUser(request, metadata=meta(stack, admin)))
        assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "LAST_ADMIN")
    refused = await stack.failure(stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=admin.user.id),
                                                             metadata=meta(stack, admin)))
    assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "LAST_ADMIN")
    # an inactive admin does not count: the rule is about *active* admins
    spare = await stack.create_user(admin.access_token, role="admin")
    await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=spare.id, active=False),
                                     metadata=meta(stack, admin))
    refused = await stack.failure(stack.auth_stub.UpdateUser(
        auth_pb2.UpdateUserRequest(user_id=admin.user.id, role="attendant"), metadata=meta(stack, admin)))
    assert refused.code == "LAST_ADMIN"
    # with a second active admin, the first may step down
    second = await stack.create_user(admin.access_token, role="admin")
    demoted = await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=admin.user.id, role="attendant"),
                                               metadata=meta(stack, admin))
    assert demoted.role == "attendant"
    second_session = await stack.login(second.email, tenant_slug=admin.tenant.slug)
    refused = await stack.failure(stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=second.id),
                                                             metadata=meta(stack, second_session)))
    assert refused.code == "LAST_ADMIN"


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(stack) -> None:
    first = await stack.register(tenant_name="Race Hotel")
    second = await stack.user_session(first, role="admin")
    results = await asyncio.gather(
        stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=second.user.id, role="attendant"),
                                   metadata=meta(stack, first)),
        stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=first.user.id, role="attendant"),
                                   metadata=meta(stack, second)),
        return_exceptions=True)
    refused = [result for result in results if isinstance(result, grpc.aio.AioRpcError)]
    assert len(refused) == 1 and refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    rows = await stack.sql(stack.auth_db, "SELECT count(*) AS n FROM users WHERE role = 'admin' AND active "
                                          "AND tenant_id = $1", first.tenant.id, tenant=first.tenant.id)
    assert rows == [{"n": 1}]


async def test_email_is_unique_within_a_tenant_only(stack) -> None:
    admin = await stack.register(tenant_name="Unique Hotel")
    other = await stack.register(tenant_name="Other Unique Hotel")
    email = stack.email("twin")
    first = await stack.create_user(admin.access_token, email=email)
    taken = await stack.failure(stack.create_user(admin.access_token, email=f"  {email.upper()} "))
    assert taken == (grpc.StatusCode.ALREADY_EXISTS, "EMAIL_TAKEN")
    second = await stack.create_user(admin.access_token)
    taken = await stack.failure(stack.auth_stub.UpdateUser(
        auth_pb2.UpdateUserRequest(user_id=second.id, email=email), metadata=meta(stack, admin)))
    assert taken.code == "EMAIL_TAKEN"
    elsewhere = await stack.create_user(other.access_token, email=email)
    assert elsewhere.tenant_id == other.tenant.id and elsewhere.id != first.id


async def test_seats_of_the_plan_limit_active_users(stack) -> None:
    admin = await stack.register(tenant_name="Seats Hotel")
    limit = await seats(stack, admin)
    assert limit >= 2
    created = [await stack.create_user(admin.access_token) for _ in range(limit - 1)]  # the admin holds one seat
    full = await stack.failure(stack.create_user(admin.access_token))
    assert full == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SEAT_LIMIT_REACHED")
    # a deactivated user frees its seat; reactivating it needs a free one
    await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=created[0].id, active=False),
                                     metadata=meta(stack, admin))
    newcomer = await stack.create_user(admin.access_token)
    back = await stack.failure(stack.auth_stub.UpdateUser(
        auth_pb2.UpdateUserRequest(user_id=created[0].id, active=True), metadata=meta(stack, admin)))
    assert back.code == "SEAT_LIMIT_REACHED"
    await stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=newcomer.id), metadata=meta(stack, admin))
    again = await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=created[0].id, active=True),
                                             metadata=meta(stack, admin))
    assert again.active


async def test_concurrent_creations_never_exceed_the_seats(stack) -> None:
    admin = await stack.register(tenant_name="Rush Seats Hotel")
    limit = await seats(stack, admin)
    results = await asyncio.gather(*(stack.create_user(admin.access_token) for _ in range(limit + 2)),
                                   return_exceptions=True)
    created = [result for result in results if isinstance(result, auth_pb2.User)]
    refused = [result for result in results if isinstance(result, grpc.aio.AioRpcError)]
    assert len(created) == limit - 1 and len(refused) == 3
    assert all(error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for error in refused)


async def test_another_tenants_user_ids_are_not_found(stack) -> None:
    a, b = await stack.register(tenant_name="Tenant A Hotel"), await stack.register(tenant_name="Tenant B Hotel")
    b_user = await stack.create_user(b.access_token, name="Bea")
    calls = [
        stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=b_user.id), metadata=meta(stack, a)),
        stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=b_user.id, name="pwned"),
                                   metadata=meta(stack, a)),
        stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=b.user.id, active=False),
                                   metadata=meta(stack, a)),
        stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id=b_user.id), metadata=meta(stack, a)),
    ]
    for call in calls:
        assert await stack.failure(call) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    named = await stack.failure(stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(tenant_id=b.tenant.id),
                                                          metadata=meta(stack, a)))
    assert named == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")
    named = await stack.failure(stack.create_user(a.access_token, tenant_id=b.tenant.id))
    assert named == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")
    # tenant B is unchanged
    b_users = await list_all(stack, b, include_inactive=True)
    assert {(user.id, user.name, user.active) for user in b_users} == {
        (b.user.id, "Ana Owner", True), (b_user.id, "Bea", True)}


async def test_list_pages_with_a_keyset_cursor_and_filters(stack) -> None:
    admin = await stack.register(tenant_name="Paging Hotel")
    made = [await stack.create_user(admin.access_token, name=f"Guest Agent {i}") for i in range(3)]
    made.append(await stack.create_user(admin.access_token, name="100% Night_Shift", role="admin"))
    await stack.auth_stub.UpdateUser(auth_pb2.UpdateUserRequest(user_id=made[0].id, active=False),
                                     metadata=meta(stack, admin))
    seen, cursor, pages = [], "", 0
    while True:
        page = await stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(limit=2, cursor=cursor,
                                                                         include_inactive=True),
                                               metadata=meta(stack, admin))
        seen.extend(user.id for user in page.items)
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == 3 and seen == [admin.user.id, *(user.id for user in made)]  # creation order, no repeats
    active = [user.id for user in await list_all(stack, admin)]
    assert made[0].id not in active and len(active) == 4
    admins = await list_all(stack, admin, role="admin")
    assert {user.id for user in admins} == {admin.user.id, made[3].id}
    assert [user.id for user in await list_all(stack, admin, q="agent")] == [made[1].id, made[2].id]
    assert [user.id for user in await list_all(stack, admin, q="100%")] == [made[3].id]
    assert [user.id for user in await list_all(stack, admin, q="t_s")] == [made[3].id]  # `_` is literal
    assert [user.id for user in await list_all(stack, admin, q=made[2].email.upper())] == [made[2].id]
    bad = await stack.failure(stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(cursor="garbage!"),
                                                        metadata=meta(stack, admin)))
    assert bad == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CURSOR")
    bad = await stack.failure(stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(role="owner"),
                                                        metadata=meta(stack, admin)))
    assert bad == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ROLE")


async def test_password_policy_on_creation_and_change(stack) -> None:
    admin = await stack.register(tenant_name="Policy Hotel")
    email = stack.email("weak")
    for password in ("short", "a" * 12, email):
        refused = await stack.failure(stack.create_user(admin.access_token, email=email, password=password))
        assert refused == (grpc.StatusCode.INVALID_ARGUMENT, "WEAK_PASSWORD"), password
    user = await stack.create_user(admin.access_token, email=email)
    refused = await stack.failure(stack.auth_stub.UpdateUser(
        auth_pb2.UpdateUserRequest(user_id=user.id, password=email.upper()), metadata=meta(stack, admin)))
    assert refused.code == "WEAK_PASSWORD"
    bad_email = await stack.failure(stack.create_user(admin.access_token, email="not-an-email"))
    assert bad_email.code == "INVALID_EMAIL"


async def test_service_principals_read_a_named_tenant_and_manage_nothing(stack) -> None:
    admin = await stack.register(tenant_name="Service Reader Hotel")
    token = await stack.service_token()
    page = await stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(tenant_id=admin.tenant.id),
                                           metadata=stack.bearer(token))
    assert [user.id for user in page.items] == [admin.user.id]
    got = await stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id=admin.user.id), metadata=stack.bearer(token))
    assert got.tenant_id == admin.tenant.id
    unnamed = await stack.failure(stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest(), metadata=stack.bearer(token)))
    assert unnamed == (grpc.StatusCode.PERMISSION_DENIED, "TENANT_REQUIRED")
    create = await stack.failure(stack.create_user(token, tenant_id=admin.tenant.id))
    assert create == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN_ROLE")


async def test_users_calls_need_a_token(stack) -> None:
    for call in (stack.auth_stub.ListUsers(auth_pb2.ListUsersRequest()),
                 stack.auth_stub.GetUser(auth_pb2.GetUserRequest(user_id="x")),
                 stack.auth_stub.DeleteUser(auth_pb2.DeleteUserRequest(user_id="x"))):
        assert await stack.failure(call) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")

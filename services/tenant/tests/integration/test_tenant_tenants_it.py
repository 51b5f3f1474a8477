"""Tenants through the real gRPC API: creation by services, reading by users and services, slugs."""

import grpc
import pytest
from eva.tenant.v1 import tenant_pb2

pytestmark = pytest.mark.integration


async def test_services_create_tenants_with_unique_slugs(stack) -> None:
    service = stack.bearer(await stack.service_token())
    name = "Casa do Mar São Paulo"
    first = await stack.tenant_stub.CreateTenant(
        tenant_pb2.CreateTenantRequest(name=name, timezone="America/Sao_Paulo", locale="pt-BR"), metadata=service)
    second = await stack.tenant_stub.CreateTenant(tenant_pb2.CreateTenantRequest(name=name), metadata=service)
    assert first.slug == "casa-do-mar-sao-paulo" and second.slug == "casa-do-mar-sao-paulo-2"
    assert (first.timezone, first.locale, first.plan, first.status) == ("America/Sao_Paulo", "pt-BR", "starter",
                                                                         "active")
    assert (second.timezone, second.locale) == ("UTC", "en")
    by_slug = await stack.tenant_stub.GetTenantBySlug(tenant_pb2.GetTenantBySlugRequest(slug=second.slug),
                                                      metadata=service)
    assert by_slug.id == second.id


async def test_create_tenant_validates_and_is_service_only(stack) -> None:
    service = stack.bearer(await stack.service_token())
    assert await stack.failure(stack.tenant_stub.CreateTenant(
        tenant_pb2.CreateTenantRequest(name="X", timezone="Mars/Base"), metadata=service)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TIMEZONE")
    admin = await stack.register()
    assert await stack.failure(stack.tenant_stub.CreateTenant(
        tenant_pb2.CreateTenantRequest(name="Sneaky"), metadata=stack.bearer(admin.access_token))) == (
        grpc.StatusCode.PERMISSION_DENIED, "SERVICE_ONLY")


async def test_a_user_reads_only_its_own_tenant(stack) -> None:
    mine, theirs = await stack.register(), await stack.register()
    tenant = await stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=theirs.tenant.id),
                                               metadata=stack.bearer(mine.access_token))
    assert tenant.id == mine.tenant.id  # the requested id is ignored for users
    assert await stack.failure(stack.tenant_stub.GetTenantBySlug(
        tenant_pb2.GetTenantBySlugRequest(slug=theirs.tenant.slug), metadata=stack.bearer(mine.access_token))) == (
        grpc.StatusCode.PERMISSION_DENIED, "SERVICE_ONLY")


async def test_a_service_names_its_tenant(stack) -> None:
    admin = await stack.register()
    service = stack.bearer(await stack.service_token())
    tenant = await stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=admin.tenant.id),
                                               metadata=service)
    assert tenant.slug == admin.tenant.slug
    assert await stack.failure(stack.tenant_stub.GetTenant(tenant_pb2.GetTenantRequest(), metadata=service)) == (
        grpc.StatusCode.PERMISSION_DENIED, "TENANT_REQUIRED")
    assert await stack.failure(stack.tenant_stub.GetTenant(
        tenant_pb2.GetTenantRequest(tenant_id="no-such-tenant"), metadata=service)) == (
        grpc.StatusCode.NOT_FOUND, "TENANT_NOT_FOUND")
    assert await stack.failure(stack.tenant_stub.GetTenantBySlug(
        tenant_pb2.GetTenantBySlugRequest(slug="no-such-hotel-xyz"), metadata=service)) == (
        grpc.StatusCode.NOT_FOUND, "TENANT_NOT_FOUND")


async def test_registration_through_auth_is_audited_for_the_new_admin(stack) -> None:
    session = await stack.register(tenant_name="Audit Trail Hotel")

    async def created() -> list[tenant_pb2.AuditLog] | None:
        page = await stack.tenant_stub.ListAuditLogs(tenant_pb2.ListAuditLogsRequest(action="tenant.created"),
                                                     metadata=stack.bearer(session.access_token))
        return list(page.items) or None

    (entry,) = await stack.eventually(created, what="the tenant.created audit entry")
    assert (entry.tenant_id, entry.actor_type, entry.actor_id, entry.target_id) == (
        session.tenant.id, "service", "service:auth", session.tenant.id)


async def test_reserved_slugs_go_to_no_hotel_and_platform_only_to_the_platforms_tenant(stack) -> None:
    service = stack.bearer(await stack.service_token())
    hotel = await stack.tenant_stub.CreateTenant(tenant_pb2.CreateTenantRequest(name="Platform"), metadata=service)
    admin = await stack.tenant_stub.CreateTenant(tenant_pb2.CreateTenantRequest(name="Admin"), metadata=service)
    assert hotel.slug.startswith("platform-") and admin.slug.startswith("admin-")
    try:
        existing = await stack.tenant_stub.GetTenantBySlug(tenant_pb2.GetTenantBySlugRequest(slug="platform"),
                                                           metadata=service)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        platform = await stack.tenant_stub.CreateTenant(
            tenant_pb2.CreateTenantRequest(name="Platform", platform=True), metadata=service)
        assert platform.slug == "platform" and platform.id != hotel.id
    else:
        assert existing.id != hotel.id
    assert await stack.failure(stack.tenant_stub.CreateTenant(
        tenant_pb2.CreateTenantRequest(name="Platform", platform=True), metadata=service)) == (
        grpc.StatusCode.ALREADY_EXISTS, "PLATFORM_EXISTS")

"""Domain views -> TenantService protobuf messages (timestamps as RFC 3339, dates as YYYY-MM-DD)."""

from __future__ import annotations

import json

from eva.tenant.v1 import tenant_pb2
from eva_common.timefmt import rfc3339

from tenant_service.api_keys.domain import ApiKeyView
from tenant_service.audit_log.domain import AuditLogView
from tenant_service.domain import CredentialsView, HealthView, SecretState, SendingCredentials, TenantView
from tenant_service.usage.domain import PlanLimitsView, UsageReport


def tenant_message(tenant: TenantView) -> tenant_pb2.Tenant:
    return tenant_pb2.Tenant(
        id=tenant.id, name=tenant.name, slug=tenant.slug, status=tenant.status, plan=tenant.plan,
        timezone=tenant.timezone, locale=tenant.locale, created_at=rfc3339(tenant.created_at),
        read_receipts=tenant.read_receipts,
    )


def _secret_state(state: SecretState) -> tenant_pb2.SecretState:
    return tenant_pb2.SecretState(set=state.set, last4=state.last4)


def credentials_message(view: CredentialsView) -> tenant_pb2.WhatsAppCredentialsView:
    return tenant_pb2.WhatsAppCredentialsView(
        configured=view.configured,
        phone_number_id=view.phone_number_id,
        waba_id=view.waba_id,
        display_phone_number=view.display_phone_number,
        access_token=_secret_state(view.access_token),
        app_secret=_secret_state(view.app_secret),
        verify_token=_secret_state(view.verify_token),
        updated_at=rfc3339(view.updated_at),
        coexistence=view.coexistence,
        throughput_mps=view.throughput_mps,
        health=_health(view.health) if view.configured else None,
    )


def _health(health: HealthView) -> tenant_pb2.WhatsAppHealth:
    return tenant_pb2.WhatsAppHealth(status=health.status, code=health.code or 0, detail=health.detail or "",
                                     since=rfc3339(health.since))


def sending_credentials_message(sending: SendingCredentials) -> tenant_pb2.SendingCredentials:
    return tenant_pb2.SendingCredentials(
        tenant_id=sending.tenant_id, phone_number_id=sending.phone_number_id, access_token=sending.access_token,
        waba_id=sending.waba_id, display_phone_number=sending.display_phone_number,
        coexistence=sending.coexistence, throughput_mps=sending.throughput_mps,
        tenant_status=sending.tenant_status, read_receipts=sending.read_receipts, health=sending.health,
    )


def api_key_message(view: ApiKeyView) -> tenant_pb2.ApiKey:
    return tenant_pb2.ApiKey(
        id=view.id, tenant_id=view.tenant_id, name=view.name, prefix=view.prefix, scopes=list(view.scopes),
        created_at=rfc3339(view.created_at), last_used_at=rfc3339(view.last_used_at),
        expires_at=rfc3339(view.expires_at), revoked_at=rfc3339(view.revoked_at), created_by=view.created_by,
    )


def plan_limits_message(view: PlanLimitsView) -> tenant_pb2.PlanLimits:
    return tenant_pb2.PlanLimits(
        tenant_id=view.tenant_id, plan=view.plan, monthly_message_quota=view.monthly_message_quota,
        seats=view.seats, messages_used_this_month=view.messages_used_this_month,
        quota_exceeded=view.quota_exceeded, period_start=view.period_start.isoformat(),
        period_end=view.period_end.isoformat(),
    )


def usage_message(report: UsageReport) -> tenant_pb2.GetUsageResponse:
    return tenant_pb2.GetUsageResponse(
        days=[tenant_pb2.UsageDay(date=day.date.isoformat(), category=day.category, direction=day.direction,
                                  count=day.count) for day in report.days],
        totals_by_category=report.totals_by_category,
        limits=plan_limits_message(report.limits),
    )


def audit_log_message(view: AuditLogView) -> tenant_pb2.AuditLog:
    return tenant_pb2.AuditLog(
        id=view.id, tenant_id=view.tenant_id, actor_type=view.actor_type, actor_id=view.actor_id or "",
        action=view.action, target_type=view.target_type or "", target_id=view.target_id or "",
        outcome=view.outcome, ip=view.ip or "", user_agent=view.user_agent or "", request_id=view.request_id or "",
        details_json=json.dumps(view.details, separators=(",", ":"), sort_keys=True, default=str),
        occurred_at=rfc3339(view.occurred_at),
    )

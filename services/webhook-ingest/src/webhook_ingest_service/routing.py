"""Where each part of a delivery goes: parsing the body, grouping its changes by owner, and splitting it into
one payload per tenant (plus the parts no tenant owns).

A change is routed by `value.metadata.phone_number_id`; a change without one (account-level fields such as
`message_template_status_update`) by its entry's `id`, the WhatsApp Business Account id: it belongs to the tenant
the tenant service names for that WABA (`ResolveWabaId`), else to the tenant that owns the phone numbers of the same
WABA in the same delivery; otherwise it is unrouted. A tenant share holding only account-level changes is keyed
by its WABA id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eva_common.errors import InvalidArgument

from webhook_ingest_service.tenants import TenantRoute

MAX_ROUTING_KEYS = 1000  # Meta batches at most 1,000 updates in one delivery


@dataclass(frozen=True, slots=True)
class ChangeRef:
    """One change of a delivery, by position, with the key it routes by."""

    entry_index: int
    change_index: int
    phone_number_id: str | None
    waba_id: str


@dataclass(frozen=True, slots=True)
class ParsedDelivery:
    payload: dict[str, Any]
    changes: tuple[ChangeRef, ...]

    @property
    def phone_number_ids(self) -> list[str]:
        """Distinct phone number ids, in order of first appearance."""
        return list(dict.fromkeys(ref.phone_number_id for ref in self.changes if ref.phone_number_id))

    @property
    def account_waba_ids(self) -> list[str]:
        """Distinct WABA ids of the changes that carry no phone number id (routed by WABA), in order."""
        return list(dict.fromkeys(ref.waba_id for ref in self.changes if not ref.phone_number_id and ref.waba_id))


@dataclass(slots=True)
class TenantPart:
    """The part of a delivery one tenant owns; `phone_number_id` is its first phone number (the Kafka key)."""

    tenant_id: str
    app_secret: str
    phone_number_id: str
    payload: dict[str, Any]


@dataclass(slots=True)
class UnroutedPart:
    """Changes no tenant owns, grouped by the key they were routed by (phone number id, else WABA id)."""

    routing_key: str
    payload: dict[str, Any]


@dataclass(slots=True)
class RoutingPlan:
    tenants: list[TenantPart] = field(default_factory=list)
    unrouted: list[UnroutedPart] = field(default_factory=list)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_delivery(body: bytes) -> ParsedDelivery:
    """Parses a delivery; anything that is not a JSON object with an `entry` list of objects is refused."""
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidArgument("the body is not valid JSON", code="MALFORMED_PAYLOAD") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise InvalidArgument("the body is not a webhook delivery (no entry list)", code="MALFORMED_PAYLOAD")
    changes: list[ChangeRef] = []
    for entry_index, entry in enumerate(payload["entry"]):
        if not isinstance(entry, dict):
            raise InvalidArgument("an entry is not an object", code="MALFORMED_PAYLOAD")
        waba_id = _as_id(entry.get("id"))
        entry_changes = entry.get("changes", [])
        if not isinstance(entry_changes, list):
            raise InvalidArgument("an entry's changes are not a list", code="MALFORMED_PAYLOAD")
        for change_index, change in enumerate(entry_changes):
            if not isinstance(change, dict):
                raise InvalidArgument("a change is not an object", code="MALFORMED_PAYLOAD")
            changes.append(ChangeRef(entry_index, change_index, _phone_number_id(change), waba_id or ""))
    parsed = ParsedDelivery(payload=payload, changes=tuple(changes))
    if len(parsed.phone_number_ids) + len(parsed.account_waba_ids) > MAX_ROUTING_KEYS:
        raise InvalidArgument("too many phone numbers in one delivery", code="MALFORMED_PAYLOAD")
    return parsed


def _as_id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _phone_number_id(change: Mapping[str, Any]) -> str | None:
    value = change.get("value")
    metadata = value.get("metadata") if isinstance(value, dict) else None
    return _as_id(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None


def plan_routes(
    parsed: ParsedDelivery,
    routes: Mapping[str, TenantRoute | None],
    waba_routes: Mapping[str, TenantRoute | None] | None = None,
) -> RoutingPlan:
    """Splits a delivery by owner. `routes` maps each phone number id to its tenant (None: nobody's);
    `waba_routes` each WABA id of an account-level change to its tenant, as the tenant service knows it."""
    known_wabas = {waba: route for waba, route in (waba_routes or {}).items() if route is not None}
    waba_owner = {**_waba_owners(parsed.changes, routes),
                  **{waba: route.tenant_id for waba, route in known_wabas.items()}}
    owner_of: dict[tuple[int, int], str | None] = {}
    first_number: dict[str, str] = {}
    first_waba: dict[str, str] = {}
    for ref in parsed.changes:
        if ref.phone_number_id is not None:
            route = routes.get(ref.phone_number_id)
            tenant_id = route.tenant_id if route is not None else None
            if tenant_id is not None:
                first_number.setdefault(tenant_id, ref.phone_number_id)
        else:
            tenant_id = waba_owner.get(ref.waba_id)
            if tenant_id is not None:
                first_waba.setdefault(tenant_id, ref.waba_id)
        owner_of[(ref.entry_index, ref.change_index)] = tenant_id

    plan = RoutingPlan()
    secret_of = {route.tenant_id: route.app_secret
                 for route in (*known_wabas.values(), *routes.values()) if route is not None}
    for tenant_id in dict.fromkeys(owner for owner in owner_of.values() if owner is not None):
        refs = [ref for ref in parsed.changes if owner_of[(ref.entry_index, ref.change_index)] == tenant_id]
        plan.tenants.append(
            TenantPart(
                tenant_id=tenant_id,
                app_secret=secret_of[tenant_id],
                phone_number_id=first_number.get(tenant_id) or first_waba[tenant_id],
                payload=_subset(parsed.payload, refs),
            )
        )
    unrouted: dict[str, list[ChangeRef]] = {}
    for ref in parsed.changes:
        if owner_of[(ref.entry_index, ref.change_index)] is None:
            unrouted.setdefault(ref.phone_number_id or ref.waba_id, []).append(ref)
    plan.unrouted = [UnroutedPart(routing_key=key, payload=_subset(parsed.payload, refs)) for key, refs in
                     unrouted.items()]
    return plan


def _waba_owners(changes: Iterable[ChangeRef], routes: Mapping[str, TenantRoute | None]) -> dict[str, str]:
    """WABA id -> tenant, when the phone-numbered changes of that WABA in this delivery all name one tenant."""
    owners: dict[str, set[str]] = {}
    for ref in changes:
        if ref.phone_number_id is not None and ref.waba_id:
            route = routes.get(ref.phone_number_id)
            if route is not None:
                owners.setdefault(ref.waba_id, set()).add(route.tenant_id)
    return {waba: next(iter(tenants)) for waba, tenants in owners.items() if len(tenants) == 1}


def _subset(payload: Mapping[str, Any], refs: Iterable[ChangeRef]) -> dict[str, Any]:
    """The delivery with only the given changes (entries keep their other fields, in their original order)."""
    wanted: dict[int, list[int]] = {}
    for ref in refs:
        wanted.setdefault(ref.entry_index, []).append(ref.change_index)
    entries = payload["entry"]
    subset_entries = []
    for entry_index in sorted(wanted):
        entry = entries[entry_index]
        changes = entry.get("changes", [])
        subset_entries.append({**entry, "changes": [changes[index] for index in sorted(wanted[entry_index])]})
    return {**payload, "entry": subset_entries}

"""Roles, API-key scopes and e-mail normalisation, as every service and the gateway share them."""

from typing import get_args

import pytest
from eva_common.identity import (
    ADMIN_ROLES,
    ALL_SCOPES,
    API_KEY_SCOPES,
    ROLE_ADMIN,
    ROLE_API_KEY,
    ROLE_ATTENDANT,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLES_BY_RANK,
    SCOPE_CONVERSATIONS_READ,
    SCOPE_CONVERSATIONS_WRITE,
    SCOPE_MESSAGES_READ,
    SCOPE_MESSAGES_SEND,
    SCOPE_USAGE_READ,
    RoleName,
    ScopeName,
    is_user_role,
    normalize_email,
    role_rank,
)


def test_roles_lowest_first_with_their_rank() -> None:
    assert ROLES_BY_RANK == ("attendant", "admin", "super_admin") == get_args(RoleName)
    assert (ROLE_ATTENDANT, ROLE_ADMIN, ROLE_SUPER_ADMIN) == ROLES_BY_RANK
    assert role_rank(ROLE_ATTENDANT) < role_rank(ROLE_ADMIN) < role_rank(ROLE_SUPER_ADMIN)
    assert [role_rank(role) for role in ROLES_BY_RANK] == [0, 1, 2]
    assert ADMIN_ROLES == {"admin", "super_admin"}


@pytest.mark.parametrize("role", [ROLE_SERVICE, ROLE_API_KEY, "", "Admin", "owner"])
def test_other_roles_rank_below_every_user_role(role: str) -> None:
    assert role_rank(role) == -1 and not is_user_role(role)


def test_api_key_scopes_in_their_listed_order() -> None:
    assert API_KEY_SCOPES == get_args(ScopeName) == (
        SCOPE_CONVERSATIONS_READ, SCOPE_CONVERSATIONS_WRITE, SCOPE_MESSAGES_READ, SCOPE_MESSAGES_SEND, SCOPE_USAGE_READ)
    assert API_KEY_SCOPES == ("conversations:read", "conversations:write", "messages:read", "messages:send",
                              "usage:read")
    assert ALL_SCOPES == frozenset(API_KEY_SCOPES) and len(ALL_SCOPES) == 5


@pytest.mark.parametrize(("raw", "normalised"), [
    ("Ana@Hotel.Example", "ana@hotel.example"),
    ("  reception@hotel.example \n", "reception@hotel.example"),
    ("already@lower.case", "already@lower.case"),
])
def test_normalize_email_trims_and_lowercases(raw: str, normalised: str) -> None:
    assert normalize_email(raw) == normalised

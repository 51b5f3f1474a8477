"""The auth service's domain errors (subclasses of the shared ones, so the shared interceptor maps them)."""

from __future__ import annotations

from eva_common.errors import AlreadyExists, NotFound, PermissionDenied, ResourceExhausted, Unauthenticated


class InvalidCredentials(Unauthenticated):
    """Unknown email, wrong password or inactive account: one answer for all, so accounts cannot be probed."""

    default_code = "INVALID_CREDENTIALS"

    def __init__(self) -> None:
        super().__init__("invalid email or password")


class TenantRequired(AlreadyExists):
    """The password matches accounts in several tenants: the caller must name one (tenantSlug).

    A conflict: gRPC ALREADY_EXISTS, which the shared error table (and so the gateway) answers as HTTP 409.
    """

    default_code = "TENANT_REQUIRED"
    title = "Tenant required"

    def __init__(self) -> None:
        super().__init__("this email belongs to several hotels; choose one with tenantSlug")


class TenantSuspended(PermissionDenied):
    """The tenant is suspended (said only after the password matched, so it reveals nothing to a guesser)."""

    default_code = "TENANT_SUSPENDED"

    def __init__(self) -> None:
        super().__init__("this hotel's account is suspended")


class RefreshTokenRefused(Unauthenticated):
    """Codes: REFRESH_TOKEN_INVALID (unknown or revoked), REFRESH_TOKEN_EXPIRED, REFRESH_TOKEN_REUSED."""

    default_code = "REFRESH_TOKEN_INVALID"


class LoginThrottled(ResourceExhausted):
    """Too many login attempts for this account or from this address; `retry_after` says when to try again."""

    default_code = "LOGIN_THROTTLED"
    title = "Too many login attempts"

    def __init__(self, *, retry_after: int) -> None:
        super().__init__("too many login attempts; try again later", retry_after=retry_after)


class ApiKeyInvalid(Unauthenticated):
    """Unknown, revoked or expired API key: one answer for all."""

    default_code = "API_KEY_INVALID"

    def __init__(self) -> None:
        super().__init__("the API key is not valid")


class UserNotFound(NotFound):
    """No live user with this id in the caller's tenant (another tenant's id looks exactly the same)."""

    default_code = "USER_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("no such user")

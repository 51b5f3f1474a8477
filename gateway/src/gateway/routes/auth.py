"""/auth/*: register, login, refresh, logout and the caller (AuthService)."""

from __future__ import annotations

from eva.auth.v1 import auth_pb2
from fastapi import APIRouter, status

from gateway.deps import ClientsDep, PrincipalDep
from gateway.problems import problem_responses
from gateway.schemas.auth import AuthSessionOut, LoginIn, LogoutIn, MeOut, RefreshIn, RegisterIn

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Register a hotel: a new tenant and its first admin",
    responses=problem_responses(400, 409, 413, 429, 503, 504),
)
async def register(body: RegisterIn, clients: ClientsDep) -> AuthSessionOut:
    session: auth_pb2.AuthSession = await clients.call(clients.auth.Register, body.to_proto(), token=None)
    return AuthSessionOut.from_proto(session)


@router.post(
    "/login",
    summary="Log in with email and password (tenantSlug when the email belongs to several hotels)",
    responses=problem_responses(400, 401, 409, 413, 429, 503, 504),
)
async def login(body: LoginIn, clients: ClientsDep) -> AuthSessionOut:
    session: auth_pb2.AuthSession = await clients.call(clients.auth.Login, body.to_proto(), token=None)
    return AuthSessionOut.from_proto(session)


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new session (rotating; reusing a spent one revokes the family)",
    responses=problem_responses(400, 401, 413, 429, 503, 504),
)
async def refresh(body: RefreshIn, clients: ClientsDep) -> AuthSessionOut:
    session: auth_pb2.AuthSession = await clients.call(
        clients.auth.Refresh, auth_pb2.RefreshRequest(refresh_token=body.refresh_token), token=None
    )
    return AuthSessionOut.from_proto(session)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a refresh token (and its family)",
    responses=problem_responses(400, 401, 413, 503, 504),
)
async def logout(body: LogoutIn, clients: ClientsDep) -> None:
    await clients.call(clients.auth.Logout, auth_pb2.LogoutRequest(refresh_token=body.refresh_token), token=None)


@router.get("/me", summary="The caller and its tenant", responses=problem_responses(401, 404, 503, 504))
async def me(principal: PrincipalDep, clients: ClientsDep) -> MeOut:
    result: auth_pb2.Me = await clients.call(clients.auth.GetMe, auth_pb2.GetMeRequest(), token=principal.token)
    return MeOut.from_proto(result)

"""/auth/*: register, login, refresh, logout and the caller (AuthService). Every call is counted per client IP."""

from __future__ import annotations

from eva.auth.v1 import auth_pb2
from fastapi import APIRouter, Depends, status

from gateway.auth import limit_auth_calls
from gateway.deps import ClientsDep, UserDep
from gateway.problems import auth_problems, problem_responses
from gateway.schemas.auth import AuthSessionOut, LoginIn, LogoutIn, MeOut, RefreshIn, RegisterIn

router = APIRouter(prefix="/auth", tags=["auth"], dependencies=[Depends(limit_auth_calls)])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Register a hotel: a new tenant and its first admin",
    responses=auth_problems(409),
)
async def register(body: RegisterIn, clients: ClientsDep) -> AuthSessionOut:
    session: auth_pb2.AuthSession = await clients.call(clients.auth.Register, body.to_proto(), token=None)
    return AuthSessionOut.from_proto(session)


@router.post(
    "/login",
    summary="Log in with email and password (tenantSlug when the email belongs to several hotels)",
    responses=auth_problems(401, 409),
)
async def login(body: LoginIn, clients: ClientsDep) -> AuthSessionOut:
    session: auth_pb2.AuthSession = await clients.call(clients.auth.Login, body.to_proto(), token=None)
    return AuthSessionOut.from_proto(session)


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new session (rotating; a spent one presented again gets the same "
            "session within the reuse grace, and revokes the family after it)",
    responses=auth_problems(401),
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
    responses=auth_problems(401),
)
async def logout(body: LogoutIn, clients: ClientsDep) -> None:
    await clients.call(clients.auth.Logout, auth_pb2.LogoutRequest(refresh_token=body.refresh_token), token=None)


@router.get("/me", summary="The caller and its tenant", responses=problem_responses(401, 403, 404, 429, 503, 504))
async def me(principal: UserDep, clients: ClientsDep) -> MeOut:
    result: auth_pb2.Me = await clients.call(clients.auth.GetMe, auth_pb2.GetMeRequest(), token=principal.token)
    return MeOut.from_proto(result)

"""Socket session bookkeeping and payload parsing (no sockets)."""

from __future__ import annotations

import pytest
from eva_common.errors import InvalidArgument
from eva_testing.tokens import TestTokenIssuer
from gateway.auth import verify_user_token
from gateway.sio import SocketUser, _conversation_id, conversation_room, tenant_room, user_room


async def test_the_session_round_trips_the_verified_user() -> None:
    issuer = TestTokenIssuer()
    token = issuer.user_token(user_id="u1", tenant_id="t1", role="attendant", ttl=120)
    user = SocketUser.from_principal(await verify_user_token(issuer.verifier(), token))
    session = user.to_session()
    assert {key: session[key] for key in ("userId", "tenantId", "role")} == {
        "userId": "u1", "tenantId": "t1", "role": "attendant"}
    assert isinstance(session["exp"], int)
    assert SocketUser.from_session(session) == user
    assert SocketUser.from_session({}) is None
    assert user.public() == {"id": "u1", "tenantId": "t1", "role": "attendant"}


def test_room_names() -> None:
    assert (tenant_room("t1"), user_room("u1"), conversation_room("c1")) == ("tenant:t1", "user:u1", "conversation:c1")


@pytest.mark.parametrize("payload", [None, "c1", 42, [], {}, {"conversationId": ""}, {"conversationId": 7},
                                     {"conversationId": "x" * 129}])
def test_malformed_conversation_payloads_are_validation_errors(payload: object) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _conversation_id(payload)
    assert caught.value.code == "VALIDATION_FAILED"


def test_a_conversation_id_is_read_from_the_payload() -> None:
    assert _conversation_id({"conversationId": " c1 "}) == "c1"

"""The successor session kept for the refresh-token reuse grace: only the spent token opens it."""

from auth_service.tokens import SuccessorPair, new_refresh_token, open_successor, refresh_token_hash, seal_successor

PAIR = SuccessorPair(access_token="header.claims.signature", refresh_token=new_refresh_token(), expires_in=900)


def test_the_spent_token_opens_its_sealed_successor() -> None:
    spent = new_refresh_token()
    assert open_successor(spent, seal_successor(spent, PAIR)) == PAIR


def test_the_seal_holds_no_token_in_the_clear_and_differs_each_time() -> None:
    spent = new_refresh_token()
    sealed = seal_successor(spent, PAIR)
    for secret in (PAIR.access_token, PAIR.refresh_token, spent, refresh_token_hash(spent)):
        assert secret.encode() not in sealed
    assert seal_successor(spent, PAIR) != sealed


def test_another_token_or_a_damaged_seal_opens_nothing() -> None:
    spent = new_refresh_token()
    sealed = seal_successor(spent, PAIR)
    assert open_successor(new_refresh_token(), sealed) is None
    assert open_successor(spent, sealed[:-1] + bytes([sealed[-1] ^ 1])) is None
    assert open_successor(spent, b"") is None


def test_the_pair_keeps_its_tokens_out_of_repr() -> None:
    assert PAIR.refresh_token not in repr(PAIR) and PAIR.access_token not in repr(PAIR)

from datetime import UTC, datetime, timedelta

from auth_service.domain import RefreshDecision, decide_refresh
from auth_service.models import RefreshToken

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _token(**changes: object) -> RefreshToken:
    values: dict[str, object] = {
        "id": "r1", "family_id": "f1", "user_id": "u1", "tenant_id": "t1", "token_hash": "h",
        "issued_at": NOW - timedelta(days=1), "expires_at": NOW + timedelta(days=1), "used_at": None,
        "revoked_at": None, **changes,
    }
    return RefreshToken(**values)


def test_fresh_token_rotates() -> None:
    assert decide_refresh(_token(), now=NOW) is RefreshDecision.ROTATE


def test_unknown_token() -> None:
    assert decide_refresh(None, now=NOW) is RefreshDecision.UNKNOWN


def test_spent_token_is_reuse() -> None:
    assert decide_refresh(_token(used_at=NOW - timedelta(minutes=1)), now=NOW) is RefreshDecision.REUSED


def test_revoked_wins_over_spent() -> None:
    token = _token(used_at=NOW - timedelta(minutes=2), revoked_at=NOW - timedelta(minutes=1))
    assert decide_refresh(token, now=NOW) is RefreshDecision.REVOKED


def test_expired_token() -> None:
    assert decide_refresh(_token(expires_at=NOW), now=NOW) is RefreshDecision.EXPIRED
    assert decide_refresh(_token(expires_at=NOW - timedelta(seconds=1)), now=NOW) is RefreshDecision.EXPIRED


GRACE = timedelta(seconds=30)


def test_spent_token_within_the_grace_is_a_replay() -> None:
    token = _token(used_at=NOW - timedelta(seconds=29))
    assert decide_refresh(token, now=NOW, reuse_grace=GRACE) is RefreshDecision.REPLAY


def test_spent_token_at_or_after_the_grace_is_reuse() -> None:
    assert decide_refresh(_token(used_at=NOW - GRACE), now=NOW, reuse_grace=GRACE) is RefreshDecision.REUSED
    assert decide_refresh(_token(used_at=NOW - timedelta(minutes=5)), now=NOW,
                          reuse_grace=GRACE) is RefreshDecision.REUSED


def test_no_grace_means_every_replay_is_reuse() -> None:
    assert decide_refresh(_token(used_at=NOW), now=NOW, reuse_grace=timedelta(0)) is RefreshDecision.REUSED


def test_revoked_wins_over_the_grace() -> None:
    token = _token(used_at=NOW - timedelta(seconds=1), revoked_at=NOW)
    assert decide_refresh(token, now=NOW, reuse_grace=GRACE) is RefreshDecision.REVOKED

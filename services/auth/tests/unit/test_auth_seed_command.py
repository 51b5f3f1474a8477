"""The seeding command's arguments: the password comes from the environment or standard input, whatever its first
character (on a command line, one that begins with '-' is taken for an option, and argv is public)."""

from __future__ import annotations

import io

import pytest
from auth_service.seed_super_admin import PASSWORD_ENV, parse_request

DASHED = "-starts-with-a-dash passphrase"


def test_the_password_comes_from_the_environment() -> None:
    request = parse_request(["--email", "root@eva.test"], {PASSWORD_ENV: DASHED}, io.StringIO())
    assert (request.email, request.password, request.name) == ("root@eva.test", DASHED, "Super Admin")


def test_the_password_comes_from_standard_input() -> None:
    request = parse_request(["--email", "root@eva.test", "--password-stdin"], {}, io.StringIO(DASHED + "\n"))
    assert request.password == DASHED


def test_no_password_is_refused_naming_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_request(["--email", "root@eva.test"], {}, io.StringIO())
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert PASSWORD_ENV in error and "--password-stdin" in error


def test_there_is_no_password_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        parse_request(["--email", "root@eva.test", "--password", "on-the-command-line"], {}, io.StringIO(""))
    assert raised.value.code == 2
    assert "unrecognized arguments: --password" in capsys.readouterr().err

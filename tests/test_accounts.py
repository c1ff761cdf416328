"""Accounts for a family: names that match whatever their case, guests and members whose access ends on a
date, and people changing their own password. Through the API (in process), the command line (its `main`)
and the upgrade that makes names case-insensitive.
"""

from __future__ import annotations

import io
import sys
from datetime import date, timedelta

import pytest
from alembic import command as alembic
from sqlalchemy import create_engine, text, update
from sqlmodel import col

from tests.conftest import PASSWORD
from vaultserver import cli
from vaultserver.db import open_database
from vaultserver.db.engine import alembic_config
from vaultserver.db.models import User, utcnow
from vaultserver.errors import ConfigurationError
from vaultserver.services.account_expiry import expiry_moment
from vaultserver.services.users import MAX_FAILURES, UserExists

NEW_PASSWORD = "Fresh!pass42"


def error(reply) -> dict:
    """The documented error body's code, message and details (its timestamp left out)."""
    body = reply.json()["error"]
    return {k: body[k] for k in ("code", "message", "details")}


def in_days(days: int) -> date:
    return date.today() + timedelta(days=days)


def expire_now(services, user_id: str) -> None:
    """Move an account's expiry into the past (no front end sets a past date)."""
    with services.db.engine.begin() as connection:
        connection.execute(update(User).where(col(User.id) == user_id)
                           .values(expires_at=utcnow() - timedelta(seconds=1)))


@pytest.fixture
def admin(make_app_client, owner_account):
    client = make_app_client()
    assert client.login(owner_account.username, owner_account.password).status == 200
    return client


def signed_in(make_app_client, username: str, password: str = PASSWORD):
    client = make_app_client()
    reply = client.login(username, password)
    assert reply.status == 200, reply.json()
    return client


# --- names ---------------------------------------------------------------------------------------------


def test_names_are_one_person_whatever_their_case(services, admin, make_app_client):
    made = admin.request("POST", "/api/admin/users", {"username": "Alice", "password": PASSWORD})
    assert made.status == 201 and made.json()["user"]["username"] == "Alice"  # kept as typed
    clash = admin.request("POST", "/api/admin/users", {"username": "alice", "password": PASSWORD})
    assert clash.status == 409 and error(clash)["code"] == "VALIDATION_001"
    with pytest.raises(UserExists):
        services.users.create("ALICE", PASSWORD)
    assert services.users.by_name("aLiCe").username == "Alice"
    for typed in ("alice", "ALICE", "Alice"):
        assert make_app_client().login(typed, PASSWORD).status == 200
    assert error(make_app_client().login("alice", "Wrong!pass1"))["code"] == "AUTH_001"


def test_the_upgrade_refuses_names_that_differ_only_in_case_and_changes_nothing(tmp_path):
    database = tmp_path / "vault.db"
    url = f"sqlite:///{database}"
    alembic.upgrade(alembic_config(url), "0008")
    engine = create_engine(url)
    with engine.begin() as connection:
        for n, name in enumerate(("Alice", "alice", "bob")):
            connection.execute(text(
                "INSERT INTO users (id, username, password_hash, role, is_active, failed_attempts,"
                " created_at, updated_at) VALUES (:id, :name, 'x', 'viewer', 1, 0, '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:00')"), {"id": f"{n:032x}", "name": name})
    with pytest.raises(ConfigurationError) as refused:
        open_database(database)
    assert "Alice" in refused.value.message and "alice" in refused.value.message
    assert "bob" not in refused.value.message and "Nothing was changed" in refused.value.message
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0008"
        assert connection.execute(text("SELECT count(*) FROM users WHERE role = 'viewer'")).scalar() == 3
    engine.dispose()


# --- expiry --------------------------------------------------------------------------------------------


def test_admins_give_guests_and_members_an_expiry_date_and_take_it_away(admin):
    day = in_days(3)
    made = admin.request("POST", "/api/admin/users", {"username": "sitter", "password": PASSWORD,
                                                      "role": "guest", "expires_at": day.isoformat()})
    assert made.status == 201, made.json()
    user = made.json()["user"]
    assert user["role"] == "guest" and user["expires_at"] == expiry_moment(day).isoformat()
    listed = {u["username"]: u for u in admin.request("GET", "/api/admin/users").json()["users"]}
    assert listed["sitter"]["expires_at"] == user["expires_at"]

    later = {"expires_at": in_days(10).isoformat(), "role": "member"}
    changed = admin.request("PATCH", f"/api/admin/users/{user['id']}", later)
    assert changed.status == 200 and changed.json()["user"]["role"] == "member"
    assert changed.json()["user"]["expires_at"] == expiry_moment(in_days(10)).isoformat()
    cleared = admin.request("PATCH", f"/api/admin/users/{user['id']}", {"expires_at": None})
    assert cleared.json()["user"]["expires_at"] is None


@pytest.mark.parametrize("body, field_says", [
    ({"role": "admin", "expires_at": "2099-01-01"}, "administrator's account cannot expire"),
    ({"role": "guest", "expires_at": "2001-01-01"}, "has passed"),
    ({"role": "guest", "expires_at": "next sunday"}, "YYYY-MM-DD"),
    ({"role": "guest", "expires_at": "2099-02-30"}, "YYYY-MM-DD"),
    ({"role": "guest", "expires_at": 20990101}, "YYYY-MM-DD"),
])
def test_an_expiry_that_cannot_be_is_refused_with_the_reason(admin, body, field_says):
    reply = admin.request("POST", "/api/admin/users", {"username": "sam", "password": PASSWORD, **body})
    assert reply.status == 400 and error(reply)["code"] == "VALIDATION_001"
    assert field_says in error(reply)["message"] and error(reply)["details"]["field"] == "expires_at"


def test_an_expiring_member_cannot_be_made_admin_until_the_date_is_cleared(services, admin, make_user):
    member = make_user()
    services.users.update(member.id, expires_at=in_days(5))
    refused = admin.request("PATCH", f"/api/admin/users/{member.id}", {"role": "admin"})
    assert refused.status == 400 and "cannot expire" in error(refused)["message"]
    promoted = admin.request("PATCH", f"/api/admin/users/{member.id}", {"role": "admin", "expires_at": None})
    assert promoted.status == 200 and promoted.json()["user"]["role"] == "admin"


def test_an_expired_account_hears_so_only_with_the_right_password(services, make_user, make_app_client,
                                                                   owner_account):
    guest = make_user(role="guest")
    services.users.update(guest.id, expires_at=in_days(2))
    expire_now(services, guest.id)
    client = make_app_client()
    wrong = client.login(guest.username, "Wrong!pass1")
    assert wrong.status == 401 and error(wrong)["code"] == "AUTH_001"
    right = client.login(guest.username, guest.password)
    assert right.status == 401 and error(right)["code"] == "AUTH_006"
    message = error(right)["message"]
    assert message.startswith("This account expired on ") and f"ask {owner_account.username}" in message
    assert services.users.get(guest.id).last_login_at is None
    assert services.audit.page(event="login")[0].details == {"reason": "account_expired"}


def test_sessions_end_when_their_account_expires(services, make_user, make_app_client):
    member = make_user()
    services.users.update(member.id, expires_at=in_days(1))
    client = signed_in(make_app_client, member.username)
    refresh_token = client.cookies["vault_refresh"]
    assert client.request("GET", "/api/auth/me").status == 200
    expire_now(services, member.id)
    ended = client.request("GET", "/api/auth/me")
    assert ended.status == 401 and error(ended) == {
        "code": "AUTH_004", "message": "This account has expired", "details": {}}
    [row] = services.sessions.list(member.id, active_only=False)
    assert row.revoked_reason == "account_expired" and row.revoked_at is not None
    refreshed = make_app_client().request("POST", "/api/auth/refresh", {"refresh_token": refresh_token})
    assert refreshed.status == 401 and error(refreshed)["code"] == "AUTH_004"


def test_a_refresh_after_the_account_expired_ends_the_session(services, make_user, make_app_client):
    member = make_user()
    services.users.update(member.id, expires_at=in_days(1))
    client = signed_in(make_app_client, member.username)
    expire_now(services, member.id)
    refreshed = make_app_client().request("POST", "/api/auth/refresh",
                                          {"refresh_token": client.cookies["vault_refresh"]})
    assert refreshed.status == 401 and error(refreshed)["message"] == "This account has expired"
    assert [s.revoked_reason for s in services.sessions.list(member.id, active_only=False)] == [
        "account_expired"]


def test_sessions_end_at_the_moment_of_expiry_by_the_session_clock(services, make_user):
    member = make_user()
    services.users.update(member.id, expires_at=in_days(1))
    tokens = services.sessions.create(services.users.get(member.id))
    assert services.sessions.authenticate(tokens.access_token).user_id == member.id
    moment = expiry_moment(in_days(1))
    services.sessions.clock = lambda: moment
    with pytest.raises(Exception, match="This account has expired"):
        services.sessions.authenticate(tokens.access_token)


# --- my password ---------------------------------------------------------------------------------------


def test_changing_my_password_signs_out_my_other_devices_and_keeps_this_one(services, make_user,
                                                                           make_app_client):
    me = make_user()
    laptop = signed_in(make_app_client, me.username)
    phone = signed_in(make_app_client, me.username)
    someone_else = make_user()
    their_device = signed_in(make_app_client, someone_else.username)
    reply = laptop.request("POST", "/api/auth/password",
                           {"current_password": me.password, "new_password": NEW_PASSWORD})
    assert reply.status == 200 and reply.json() == {"ok": True, "signed_out": 1}
    assert laptop.request("GET", "/api/auth/me").status == 200
    assert error(phone.request("GET", "/api/auth/me"))["code"] == "AUTH_004"
    assert their_device.request("GET", "/api/auth/me").status == 200
    assert make_app_client().login(me.username, me.password).status == 401
    assert make_app_client().login(me.username, NEW_PASSWORD).status == 200
    ended = [s.revoked_reason for s in services.sessions.list(me.id, active_only=False) if s.revoked_at]
    assert ended == ["password_changed"]
    assert services.audit.page(event="password_changed")[0].username == me.username


def test_a_weak_new_password_is_refused_with_the_unmet_rules(make_user, make_app_client):
    me = make_user()
    client = signed_in(make_app_client, me.username)
    reply = client.request("POST", "/api/auth/password",
                           {"current_password": me.password, "new_password": "short"})
    assert reply.status == 400 and error(reply)["code"] == "VALIDATION_001"
    assert {"an uppercase letter", "a digit", "a special character"} <= set(error(reply)["details"]["unmet"])
    assert make_app_client().login(me.username, me.password).status == 200


def test_a_wrong_current_password_counts_toward_the_lockout(services, make_user, make_app_client):
    me = make_user()
    client = signed_in(make_app_client, me.username)
    body = {"current_password": "Wrong!pass1", "new_password": NEW_PASSWORD}
    for _ in range(MAX_FAILURES):
        reply = client.request("POST", "/api/auth/password", body)
        assert reply.status == 401 and error(reply) == {
            "code": "AUTH_001", "message": "The current password is wrong", "details": {}}
    # Locked now: even the right current password is refused, and so is a sign-in.
    right = client.request("POST", "/api/auth/password", {**body, "current_password": me.password})
    assert right.status == 401 and error(right)["code"] == "AUTH_001"
    assert make_app_client().login(me.username, me.password).status == 401
    assert services.users.get(me.id).locked_until is not None
    outcomes = [e.outcome for e in services.audit.page(event="password_change")]
    assert outcomes.count("failed") == MAX_FAILURES - 1 and outcomes.count("locked") == 2
    assert client.request("GET", "/api/auth/me").status == 200  # this device stays signed in


def test_changing_a_password_needs_a_session_and_both_fields(make_user, make_app_client):
    stranger = make_app_client()
    reply = stranger.request("POST", "/api/auth/password",
                             {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert reply.status == 401
    me = make_user()
    client = signed_in(make_app_client, me.username)
    missing = client.request("POST", "/api/auth/password", {"new_password": NEW_PASSWORD})
    assert missing.status == 400 and error(missing)["details"] == {"field": "current_password"}


# --- command line --------------------------------------------------------------------------------------


@pytest.fixture
def vault_cli(paths, capsys, monkeypatch):
    """`vaultserver --data-dir … ARGS` through `cli.main` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(cli, "setup_logging", lambda paths, verbose: None)

    def run(*args: str, password: str = PASSWORD) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
        capsys.readouterr()
        try:
            code = cli.main(["--data-dir", str(paths.root), *args])
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_the_command_line_adds_guests_with_an_expiry_members_and_admins(vault_cli):
    day = in_days(4)
    code, out, err = vault_cli("user", "add", "Sitter", "--guest", "--expires", day.isoformat(),
                               "--password-stdin")
    assert code == 0, err
    assert out.strip() == f"Created guest Sitter, until {day.isoformat()}"
    assert vault_cli("user", "add", "mum", "--admin", "--password-stdin")[1].strip() == "Created admin mum"
    assert vault_cli("user", "add", "kid", "--member", "--password-stdin")[1].strip() == "Created member kid"
    assert vault_cli("user", "add", "gran", "--password-stdin")[1].strip() == "Created member gran"
    clash = vault_cli("user", "add", "sitter", "--member", "--password-stdin")
    assert clash[0] == 1 and "already exists" in clash[2]

    lines = {line.split()[0]: line.split() for line in vault_cli("user", "list")[1].splitlines()}
    assert lines["Sitter"][1:5] == ["guest", "active", "expires", day.isoformat()]
    assert lines["kid"][1:5] == ["member", "active", "no", "expiry"]
    assert lines["mum"][1] == "admin"


@pytest.mark.parametrize("args, code, says", [
    (("--guest", "--admin"), 2, "not allowed with argument"),
    (("--guest", "--expires", "06/12/2026"), 2, "give it as YYYY-MM-DD"),
    (("--guest", "--expires", "2026-02-30"), 2, "give it as YYYY-MM-DD"),
    (("--admin", "--expires", "2099-01-01"), 1, "cannot expire"),
    (("--guest", "--expires", "2001-01-01"), 1, "has passed"),
])
def test_the_command_line_refuses_roles_and_dates_that_cannot_be(vault_cli, args, code, says):
    result = vault_cli("user", "add", "sam", *args, "--password-stdin")
    assert result[0] == code and says in result[2]
    assert "sam" not in vault_cli("user", "list")[1]


def test_the_devices_of_an_expired_account_are_not_listed_as_signed_in(services, make_user, make_app_client):
    member = make_user()
    services.users.update(member.id, expires_at=in_days(1))
    signed_in(make_app_client, member.username)
    assert [s.username for s in services.sessions.list()] == [member.username]
    expire_now(services, member.id)
    assert services.sessions.list() == []

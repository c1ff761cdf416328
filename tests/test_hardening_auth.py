"""Sign-in and refresh tokens under attack: replaying any earlier refresh token of a chain ends the session,
passwords longer than bcrypt takes are a policy matter (refused when set, a counted wrong password at
sign-in), concurrent wrong guesses get no more password checks than the lockout allows, and a locked account
answers exactly like an unknown name.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta

import bcrypt
import pytest
from alembic import command
from sqlalchemy import text

from tests.support import AppClient
from vaultserver.db import Database
from vaultserver.db.engine import alembic_config
from vaultserver.db.models import User, utcnow
from vaultserver.errors import VaultError
from vaultserver.services.users import MAX_FAILURES, password_problems

OVER_LONG = "Aa1!" + "x" * 96  # 100 characters, meets every other rule


def refresh(client: AppClient, refresh_token: str):
    return client.request("POST", "/api/auth/refresh", {"refresh_token": refresh_token}, token="")


def token_chain(client: AppClient, username: str, password: str, rotations: int) -> list[dict]:
    """Sign in, then refresh `rotations` times: the token bodies R0, R1, ... in order."""
    chain = [client.login(username, password).json()]
    for _ in range(rotations):
        reply = refresh(client, chain[-1]["refresh_token"])
        assert reply.status == 200
        chain.append(reply.json())
    return chain


def count_rows(services, table: str, **where: str) -> int:
    condition = " AND ".join(f"{k} = :{k}" for k in where) or "1"
    with services.db.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table} WHERE {condition}"), where).scalar()


# --- 5: refresh-token reuse anywhere in the chain ------------------------------------------------------

@pytest.mark.parametrize("replayed", [0, 1])
def test_replaying_any_earlier_refresh_token_ends_the_session_and_is_audited(client, make_user, services,
                                                                            replayed):
    account = make_user()
    chain = token_chain(client, account.username, account.password, rotations=2)
    assert refresh(client, chain[replayed]["refresh_token"]).status == 401
    latest = chain[-1]
    assert refresh(client, latest["refresh_token"]).code == "AUTH_004"
    assert client.request("GET", "/api/auth/me", token=latest["access_token"]).code == "AUTH_004"
    denied = [e for e in services.audit.recent(event="refresh") if e.outcome == "denied"]
    assert [e.details["reason"] for e in denied] == ["refresh_token_reuse"]


def test_the_same_refresh_token_presented_twice_at_once_rotates_at_most_once(client, make_user, services):
    account = make_user()
    first = token_chain(client, account.username, account.password, rotations=0)[0]
    start, results = threading.Barrier(6), []

    def present() -> None:
        start.wait()
        try:
            results.append(services.sessions.refresh(first["refresh_token"]))
        except VaultError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=present) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if not isinstance(r, str)]
    assert len(winners) <= 1 and len(results) == 6
    for winner in winners:  # a copy was used alongside it: the session is over for both
        assert refresh(client, winner.refresh_token).code == "AUTH_004"


def test_refresh_tokens_are_stored_only_as_hashes(client, make_user, paths):
    account = make_user()
    chain = token_chain(client, account.username, account.password, rotations=3)
    stored = b"".join(p.read_bytes() for p in paths.root.glob("vault.db*"))
    assert stored, "the database files were not found"
    for body in chain:
        assert body["refresh_token"].encode() not in stored


def test_an_ended_sessions_retired_tokens_are_forgotten(make_app_client, make_user, services):
    account = make_user()
    phone, laptop = make_app_client(), make_app_client()
    chain = token_chain(phone, account.username, account.password, rotations=3)
    session_id = chain[0]["session_id"]
    assert count_rows(services, "retired_refresh_tokens", session_id=session_id) == 3
    phone.token = chain[-1]["access_token"]
    assert phone.request("POST", "/api/auth/logout").status == 200
    assert laptop.login(account.username, account.password).status == 200
    assert count_rows(services, "retired_refresh_tokens", session_id=session_id) == 0


def test_deleting_a_user_takes_their_retired_tokens_with_them(client, make_user, services):
    account = make_user()
    token_chain(client, account.username, account.password, rotations=2)
    services.users.delete(account.id)
    assert count_rows(services, "retired_refresh_tokens") == 0


# --- 6: passwords bcrypt cannot take -------------------------------------------------------------------

def test_the_password_policy_allows_at_most_72_bytes_of_utf8():
    assert password_problems("Aa1!" + "x" * 68) == []  # exactly 72 bytes
    unmet = password_problems("Aa1!" + "x" * 69)
    assert len(unmet) == 1 and "72 bytes" in unmet[0]
    assert password_problems("Aa1!" + "é" * 35) == unmet  # 39 characters, 74 bytes


def test_an_over_long_password_is_refused_as_a_policy_violation_when_set(make_app_client, make_user):
    admin, kid = make_user(role="admin"), make_user()
    owner = make_app_client()
    assert owner.login(admin.username, admin.password).status == 200
    for reply in (owner.request("POST", "/api/admin/users", {"username": "kid", "password": OVER_LONG}),
                  owner.request("PATCH", f"/api/admin/users/{kid.id}", {"password": OVER_LONG})):
        assert reply.status == 400 and reply.code == "VALIDATION_001"
        assert any("72 bytes" in rule for rule in reply.json()["error"]["details"]["unmet"])


def test_user_add_with_an_over_long_password_says_why_without_a_traceback(paths):
    result = subprocess.run(
        [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(paths.root), "user", "add", "kid",
         "--password-stdin"], input=OVER_LONG + "\n", capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "VALIDATION_001" in result.stderr and "72 bytes" in result.stderr


def test_an_over_long_password_at_sign_in_is_a_counted_wrong_password(client, make_user, services,
                                                                      monkeypatch):
    account = make_user()
    real_check, checked = bcrypt.checkpw, []
    monkeypatch.setattr(bcrypt, "checkpw",
                        lambda pw, hashed: checked.append(len(pw)) or real_check(pw, hashed))
    for _ in range(MAX_FAILURES):
        reply = client.login(account.username, OVER_LONG)
        assert reply.status == 401 and reply.code == "AUTH_001"
        assert reply.json()["error"]["message"] == "Wrong username or password"
    assert checked and max(checked) <= 72  # bcrypt never saw the long one
    failures = [e for e in services.audit.recent(event="login") if e.username == account.username]
    assert len(failures) == MAX_FAILURES and {e.outcome for e in failures} <= {"failed", "locked"}
    assert client.login(account.username, account.password).status == 401  # the failures locked it


# --- 12: concurrent guesses ----------------------------------------------------------------------------

def test_concurrent_wrong_guesses_get_no_more_password_checks_than_the_lockout_allows(
        make_user, services, monkeypatch):
    account = make_user()
    with services.db.engine.connect() as conn:
        real_hash = conn.execute(text("SELECT password_hash FROM users WHERE id = :id"),
                                 {"id": account.id}).scalar().encode()
    real_check, checks, guard = bcrypt.checkpw, [], threading.Lock()

    def counting_check(password: bytes, hashed: bytes) -> bool:
        if hashed == real_hash:
            with guard:
                checks.append(password)
        return real_check(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_check)
    start, answers = threading.Barrier(30), []

    def guess(n: int) -> None:
        start.wait()
        try:
            services.users.authenticate(account.username, f"Wrong!pass{n}", f"192.168.1.{n + 10}")
        except VaultError as exc:
            answers.append(exc.code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checks) <= MAX_FAILURES
    assert answers == ["AUTH_001"] * 30
    assert services.users.get(account.id).locked_until > utcnow()


# --- 13: a locked account and an unknown name look the same --------------------------------------------

@pytest.mark.production_password_cost  # the timing comparison needs bcrypt's real cost to dominate
def test_a_locked_account_answers_exactly_like_an_unknown_name(client, make_user, services):
    account = make_user()
    for _ in range(MAX_FAILURES):
        assert client.login(account.username, "Wrong!pass1").status == 401
    answers, timings = {}, {}
    for name in (account.username, "nobody-here"):
        start = time.perf_counter()
        answers[name] = client.login(name, account.password)  # the right password, for the locked one
        timings[name] = time.perf_counter() - start
    locked, unknown = answers[account.username], answers["nobody-here"]
    for reply in (locked, unknown):
        assert reply.status == 401 and reply.code == "AUTH_001" and "Retry-After" not in reply.headers
    shape = [{k: v for k, v in r.json()["error"].items() if k != "timestamp"} for r in (locked, unknown)]
    assert shape[0] == shape[1]
    assert 0.33 < timings[account.username] / timings["nobody-here"] < 3  # both pay for a bcrypt check
    refused = services.audit.recent(event="login")[1]  # the newest is the unknown name
    assert (refused.username, refused.outcome) == (account.username, "locked")


def test_the_lock_is_still_enforced_until_it_runs_out(client, make_user, services):
    account = make_user()
    for _ in range(MAX_FAILURES):
        client.login(account.username, "Wrong!pass1")
    assert client.login(account.username, account.password).status == 401
    with services.db.session() as session:
        session.get(User, account.id).locked_until = utcnow() - timedelta(seconds=1)
    assert client.login(account.username, account.password).status == 200


# --- the schema change -----------------------------------------------------------------------------------

def test_upgrading_keeps_each_live_sessions_earlier_token_as_retired(tmp_path):
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    command.upgrade(alembic_config(url), "0005")
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, password_hash, role, is_active, failed_attempts,"
                          " created_at, updated_at) VALUES ('u1', 'kid', 'x', 'viewer', 1, 0,"
                          " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        for sid, revoked in (("live", None), ("ended", "2026-01-02 00:00:00")):
            conn.execute(text(
                "INSERT INTO sessions (id, user_id, refresh_token_hash, previous_token_hash, device_name,"
                " device_type, ip_address, user_agent, created_at, last_activity_at, expires_at, revoked_at)"
                " VALUES (:sid, 'u1', :now, :before, '', '', '', '', '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:00', '2026-01-08 00:00:00', :revoked)"),
                {"sid": sid, "now": f"{sid}-now", "before": f"{sid}-before", "revoked": revoked})
    db.migrate()
    with db.engine.connect() as conn:
        kept = conn.execute(text("SELECT session_id, token_hash FROM retired_refresh_tokens")).all()
    assert kept == [("live", "live-before")]
    command.downgrade(alembic_config(url), "0005")
    with db.engine.connect() as conn:
        back = dict(conn.execute(text("SELECT id, previous_token_hash FROM sessions")).all())
    assert back == {"live": "live-before", "ended": None}
    db.dispose()

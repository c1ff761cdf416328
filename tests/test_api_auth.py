"""Sign-in, tokens and sessions through the real app in process: each rule shown to hold AND able to fail.

Wrong passwords, lockout, the per-address rate limit, expired and tampered tokens, refresh-token reuse, idle
timeout, the device limit, cross-site requests, and what viewers and admins may do.
"""

from __future__ import annotations

import time
from datetime import timedelta

import bcrypt
import pytest

from vaultserver.db.models import User

# --- sign-in ---------------------------------------------------------------------------------------------

def test_login_returns_tokens_user_and_strict_cookies(client, owner_account):
    reply = client.login(owner_account.username, owner_account.password, device="Owner's iPhone")
    assert reply.status == 200
    body = reply.json()
    assert {"access_token", "refresh_token", "expires_in", "token_type", "user", "session_id"} <= set(body)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["user"]["username"] == owner_account.username and body["user"]["role"] == "admin"
    cookies = reply.headers.get_all("Set-Cookie")
    access = next(c for c in cookies if c.startswith("vault_access="))
    refresh = next(c for c in cookies if c.startswith("vault_refresh="))
    for cookie in (access, refresh):
        assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    assert "Path=/api/auth" in refresh
    me = client.request("GET", "/api/auth/me")
    assert me.status == 200 and me.json()["user"]["username"] == owner_account.username


@pytest.mark.production_password_cost
def test_passwords_are_stored_as_bcrypt_at_cost_12(services, viewer_account):
    with services.db.session() as session:
        stored = session.get(User, viewer_account.id).password_hash
    assert stored.startswith("$2b$12$")
    assert bcrypt.checkpw(viewer_account.password.encode(), stored.encode())


@pytest.mark.production_password_cost
def test_wrong_password_and_unknown_user_look_the_same(client, viewer_account):
    timings = {}
    for name, password in ((viewer_account.username, "Wrong!pass1"), ("nobody", "Wrong!pass1")):
        start = time.perf_counter()
        reply = client.login(name, password)
        timings[name] = time.perf_counter() - start
        assert reply.status == 401 and reply.code == "AUTH_001"
        assert reply.json()["error"]["message"] == "Wrong username or password"
    assert 0.33 < timings[viewer_account.username] / timings["nobody"] < 3  # both pay for a bcrypt check


def test_five_failures_lock_the_account_which_then_answers_like_a_wrong_password(client, viewer_account,
                                                                               services):
    for _ in range(5):
        assert client.login(viewer_account.username, "Wrong!pass1").status == 401
    locked = client.login(viewer_account.username, viewer_account.password)
    assert locked.status == 401 and locked.code == "AUTH_001" and "Retry-After" not in locked.headers
    assert services.users.get(viewer_account.id).locked_until is not None
    assert "locked" in {e.outcome for e in services.audit.recent(event="login")}


def test_many_failures_from_one_address_are_rate_limited_and_other_addresses_are_not(
        make_app_client, owner_account, services):
    client = make_app_client(peer="192.168.1.30")
    services.users.throttle.limit = 3
    for name in ("a1", "a2", "a3"):
        client.login(name, "Wrong!pass1")
    reply = client.login(owner_account.username, owner_account.password)
    assert reply.status == 429 and reply.headers["Retry-After"]
    elsewhere = make_app_client(peer="192.168.1.31")
    assert elsewhere.login(owner_account.username, owner_account.password).status == 200


def test_password_policy_lists_the_unmet_rules(owner):
    reply = owner.request("POST", "/api/admin/users", {"username": "kid", "password": "short"})
    assert reply.status == 400 and reply.code == "VALIDATION_001"
    assert set(reply.json()["error"]["details"]["unmet"]) == {
        "at least 8 characters", "an uppercase letter", "a digit", "a special character"}
    ok = owner.request("POST", "/api/admin/users", {"username": "kid", "password": "Kid!pass99"})
    assert ok.status == 201


# --- tokens and sessions ---------------------------------------------------------------------------------

def test_missing_tampered_and_expired_tokens_are_refused(viewer, viewer_account, services):
    assert viewer.request("GET", "/api/auth/me").status == 200  # the good token works
    missing = viewer.request("GET", "/api/media/library", token="")
    assert missing.status == 401 and missing.code == "AUTH_002"
    anonymous = viewer.request("GET", "/api/media/library", headers={}, token="x.y.z")
    assert anonymous.status == 401 and anonymous.code == "AUTH_002"
    header, payload, signature = viewer.token.split(".")
    forged = viewer.request("GET", "/api/auth/me", token=f"{header}.{payload}.{signature[::-1]}")
    assert forged.status == 401 and forged.code == "AUTH_002"
    real_clock = services.sessions.clock
    services.sessions.clock = lambda: real_clock() - timedelta(minutes=20)  # token issued 20 min ago
    try:
        old = viewer.login(viewer_account.username, viewer_account.password).json()["access_token"]
    finally:
        services.sessions.clock = real_clock
    expired = viewer.request("GET", "/api/auth/me", token=old)
    assert expired.status == 401 and expired.code == "AUTH_003"


def test_refresh_rotates_and_reuse_of_an_old_token_revokes_the_session(client, viewer_account):
    first = client.login(viewer_account.username, viewer_account.password).json()
    second = client.request("POST", "/api/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert second.status == 200 and second.json()["refresh_token"] != first["refresh_token"]
    assert second.json()["session_id"] == first["session_id"]
    reuse = client.request("POST", "/api/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert reuse.status == 401
    after = client.request("GET", "/api/auth/me", token=second.json()["access_token"])
    assert after.status == 401 and after.code == "AUTH_004"
    again = client.request("POST", "/api/auth/refresh", {"refresh_token": second.json()["refresh_token"]})
    assert again.status == 401


def test_idle_for_more_than_30_minutes_signs_out(viewer, services):
    real_clock = services.sessions.clock
    services.sessions.clock = lambda: real_clock() + timedelta(minutes=31)
    try:
        reply = viewer.request("GET", "/api/auth/me")
    finally:
        services.sessions.clock = real_clock
    assert reply.status == 401 and reply.code == "AUTH_004"
    assert viewer.request("GET", "/api/auth/me").status == 401  # and it stays signed out


def test_a_sixth_device_signs_out_the_least_recently_active(make_app_client, viewer_account):
    clients = []
    for n in range(6):
        client = make_app_client()
        reply = client.login(viewer_account.username, viewer_account.password, device=f"device {n}")
        assert reply.status == 200
        clients.append(client)
    assert clients[0].request("GET", "/api/auth/me").code == "AUTH_004"
    assert all(c.request("GET", "/api/auth/me").status == 200 for c in clients[1:])
    listed = clients[5].request("GET", "/api/sessions").json()["sessions"]
    assert len(listed) == 5 and sum(s["current"] for s in listed) == 1


def test_users_end_their_own_sessions_and_sign_out_everywhere(make_app_client, viewer_account):
    phone, laptop, tablet = make_app_client(), make_app_client(), make_app_client()
    for c, name in ((phone, "phone"), (laptop, "laptop"), (tablet, "tablet")):
        c.login(viewer_account.username, viewer_account.password, device=name)
    laptop_id = next(s["id"] for s in phone.request("GET", "/api/sessions").json()["sessions"]
                     if s["device_name"] == "laptop")
    assert phone.request("DELETE", f"/api/sessions/{laptop_id}").status == 200
    assert laptop.request("GET", "/api/auth/me").code == "AUTH_004"
    assert phone.request("DELETE", "/api/sessions").json()["ended"] == 1
    assert tablet.request("GET", "/api/auth/me").code == "AUTH_004"
    assert phone.request("GET", "/api/auth/me").status == 200
    assert phone.request("POST", "/api/auth/logout").status == 200
    assert phone.request("GET", "/api/auth/me").code == "AUTH_004"


def test_signing_out_clears_the_cookies_and_the_browsers_cached_pictures(viewer):
    reply = viewer.request("POST", "/api/auth/logout")
    assert reply.status == 200 and reply.headers["Clear-Site-Data"] == '"cache"'
    cleared = {c.split("=")[0]: c for c in reply.headers.get_all("Set-Cookie")}
    assert set(cleared) == {"vault_access", "vault_refresh"}
    assert all("Max-Age=0" in c or "Expires=Thu, 01 Jan 1970" in c for c in cleared.values())


def test_cookie_authenticated_changes_must_be_same_origin(viewer):
    assert viewer.request("GET", "/api/auth/me", use_cookies=True).status == 200
    cross = viewer.request("DELETE", "/api/sessions", use_cookies=True, headers={"Origin": "https://evil.example"})
    assert cross.status == 403 and cross.code == "SEC_002"
    bare = viewer.request("POST", "/api/auth/logout", use_cookies=True)
    assert bare.status == 403
    same = viewer.request("POST", "/api/auth/logout", use_cookies=True, headers={"Origin": "https://localhost"})
    assert same.status == 200


# --- accounts --------------------------------------------------------------------------------------------

def test_viewers_cannot_use_admin_routes(viewer):
    for path in ("/api/admin/users", "/api/admin/sessions", "/api/admin/audit", "/api/admin/queue",
                 "/api/admin/settings"):
        assert viewer.request("GET", path).status == 403, path


def test_admins_manage_accounts_and_changes_sign_the_user_out(owner, make_app_client):
    kid = make_app_client()
    created = owner.request("POST", "/api/admin/users", {"username": "kid", "password": "Kid!pass99"}).json()
    kid_id = created["user"]["id"]
    assert kid.login("kid", "Kid!pass99").status == 200
    reset = owner.request("PATCH", f"/api/admin/users/{kid_id}", {"password": "New!pass99"})
    assert reset.status == 200 and kid.request("GET", "/api/auth/me").code == "AUTH_004"
    assert kid.login("kid", "New!pass99").status == 200
    assert owner.request("PATCH", f"/api/admin/users/{kid_id}", {"is_active": False}).status == 200
    assert kid.request("GET", "/api/auth/me").code == "AUTH_004"
    assert kid.login("kid", "New!pass99").code == "AUTH_001"
    assert owner.request("DELETE", f"/api/admin/users/{kid_id}").status == 200
    names = [u["username"] for u in owner.request("GET", "/api/admin/users").json()["users"]]
    assert "kid" not in names
    me = owner.request("GET", "/api/auth/me").json()["user"]["id"]
    assert owner.request("DELETE", f"/api/admin/users/{me}").status == 400


def test_admin_audit_is_cursor_paginated_and_filterable(owner, viewer_account):
    for _ in range(3):
        owner.login(viewer_account.username, "Wrong!pass1")
    page = owner.request("GET", "/api/admin/audit?limit=2&event=login").json()
    assert len(page["entries"]) == 2 and page["next_cursor"]
    rest = owner.request("GET", f"/api/admin/audit?limit=2&event=login&cursor={page['next_cursor']}").json()
    ids = [e["id"] for e in page["entries"] + rest["entries"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids) == 4

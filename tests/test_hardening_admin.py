"""Hardening of the audit log and administration, through the real app in process: refusals a stranger can
cause at will are folded instead of filling the log, old audit and session rows are pruned after their
retention, the audit CSV cannot carry spreadsheet formulas, absurd paging is a 400, and an admin cannot lock
everyone out (no active admin, a listen address this machine does not have, a key store change over the API).
"""

from __future__ import annotations

import csv
import time
from datetime import timedelta

import pytest

from tests.conftest import wait_for
from vaultserver.config import Settings
from vaultserver.db.models import AccessLog, DeviceSession, utcnow
from vaultserver.services.audit import AuditEvent


def _rows(services, event: str, outcome: str | None = None) -> list:
    return [e for e in services.audit.recent(limit=10_000, event=event) if outcome in (None, e.outcome)]


# --- item 8: refusals are folded, old rows are pruned ------------------------------------------------------

def test_a_thousand_denied_requests_from_one_address_make_one_row_with_their_count(make_app_client, services):
    outsider = make_app_client(peer="192.168.7.20")
    for _ in range(1000):
        assert outsider.request("GET", "/api/health").status == 403
    other = make_app_client(peer="192.168.7.21")
    assert other.request("GET", "/api/health").status == 403
    rows = _rows(services, "network_denied")
    by_address = {}
    for row in rows:
        by_address.setdefault(row.ip_address, []).append(row)
    assert set(by_address) == {"192.168.7.20", "192.168.7.21"}
    assert len(by_address["192.168.7.20"]) <= 2  # one per minute: the run may straddle one minute's end
    assert sum(r.details["count"] for r in by_address["192.168.7.20"]) == 1000
    assert [r.details["count"] for r in by_address["192.168.7.21"]] == [1]


def test_a_folded_refusal_starts_a_new_row_once_its_minute_is_over(make_app_client, services):
    services.audit.fold_seconds = 0.2
    outsider = make_app_client(peer="192.168.7.20")
    for _ in range(3):
        outsider.request("GET", "/api/health")
    time.sleep(0.3)
    outsider.request("GET", "/api/health")
    assert [r.details["count"] for r in _rows(services, "network_denied")] == [1, 3]  # newest first


def test_many_addresses_in_one_minute_make_a_bounded_number_of_rows(make_app_client, services):
    services.audit.fold_sources = 20
    peers = [f"192.168.{third}.{last}" for third in (7, 8) for last in range(1, 101)]
    for peer in peers:
        assert make_app_client(peer=peer).request("GET", "/api/health").status == 403
    rows = _rows(services, "network_denied")
    assert len(rows) == 21 and sum(r.details["count"] for r in rows) == len(peers)
    overflow = [r for r in rows if r.ip_address is None]
    assert len(overflow) == 1 and overflow[0].details["count"] == len(peers) - 20


def test_throttled_sign_ins_from_one_address_are_folded_into_one_row(make_app_client, owner_account,
                                                                     services):
    client = make_app_client(peer="192.168.1.30")
    services.users.throttle.limit = 3
    for name in ("a1", "a2", "a3"):
        assert client.login(name, "Wrong!pass1").status == 401
    for attempt in range(200):
        assert client.login(f"guess{attempt}", "Wrong!pass1").status == 429
    denied = _rows(services, "login", "denied")
    assert len(denied) == 1 and denied[0].details == {"reason": "ip_rate_limited", "count": 200}
    assert len(_rows(services, "login", "failed")) == 3  # real password checks are each kept


def _add_audit_row(services, days_old: float, event: str = "login") -> int:
    with services.db.session() as session:
        row = AccessLog(event=event, timestamp=utcnow() - timedelta(days=days_old))
        session.add(row)
        session.flush()
        return row.id or 0


def _add_session(services, user_id: str, *, created_days_ago: float, revoked_days_ago: float | None) -> str:
    now = utcnow()
    with services.db.session() as session:
        created = now - timedelta(days=created_days_ago)
        revoked = None if revoked_days_ago is None else now - timedelta(days=revoked_days_ago)
        row = DeviceSession(user_id=user_id, refresh_token_hash=f"h{created_days_ago}", created_at=created,
                            last_activity_at=created, expires_at=created + timedelta(days=7),
                            revoked_at=revoked)
        session.add(row)
        session.flush()
        return row.id


def test_pruning_removes_only_audit_and_ended_session_rows_older_than_their_retention(services, make_user):
    user = make_user()
    old_audit, kept_audit = _add_audit_row(services, 366), _add_audit_row(services, 364)
    old_revoked = _add_session(services, user.id, created_days_ago=120, revoked_days_ago=91)
    old_expired = _add_session(services, user.id, created_days_ago=100, revoked_days_ago=None)
    recent_revoked = _add_session(services, user.id, created_days_ago=95, revoked_days_ago=89)
    live = _add_session(services, user.id, created_days_ago=1, revoked_days_ago=None)

    removed = services.prune_old_records()

    assert removed == {"audit": 1, "sessions": 2}
    with services.db.session() as session:
        assert session.get(AccessLog, old_audit) is None and session.get(AccessLog, kept_audit)
        assert session.get(DeviceSession, old_revoked) is None
        assert session.get(DeviceSession, old_expired) is None
        assert session.get(DeviceSession, recent_revoked) and session.get(DeviceSession, live)
    services.settings.update(audit_retention_days=30, session_retention_days=30)
    assert services.prune_old_records() == {"audit": 1, "sessions": 1}


def test_retention_is_declared_once_and_offered_to_the_admin_api(owner):
    for name, default in (("audit_retention_days", 365), ("session_retention_days", 90)):
        field = Settings.model_fields[name]
        assert field.default == default and field.description
        assert (field.json_schema_extra or {}).get("section") == "security"
    reply = owner.request("GET", "/api/admin/settings").json()
    assert reply["settings"]["audit_retention_days"] == 365 and "session_retention_days" in reply["schema"]
    assert owner.request("PATCH", "/api/admin/settings", {"audit_retention_days": 0}).code == "VALIDATION_001"


def test_the_runtime_prunes_old_rows_when_it_starts(paths, services):
    from vaultserver.runtime import VaultRuntime

    _add_audit_row(services, 400, event="long_ago")
    runtime = VaultRuntime(paths, services)
    runtime.start(serve=False)
    try:
        pruned = wait_for(lambda: services.audit.recent(event="records_pruned"), timeout=20)
        assert pruned[0].details == {"audit": 1, "sessions": 0}
        assert not services.audit.recent(event="long_ago")
    finally:
        runtime.stop()


# --- item 15: the audit CSV carries no formulas ------------------------------------------------------------

@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd",
                                  "\rcmd"])
def test_audit_csv_cells_that_a_spreadsheet_would_run_are_escaped(client, services, tmp_path, name):
    assert client.login(name, "Wrong!pass1").status == 401
    services.audit.record(AuditEvent("note", resource="=1+2", details={}))
    dest = tmp_path / "audit.csv"
    services.audit.export_csv(dest)
    with dest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    login = next(r for r in rows if r["event"] == "login")
    assert login["username"] == "'" + name
    assert next(r for r in rows if r["event"] == "note")["resource"] == "'=1+2"
    for row in rows:
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row.values())


# --- item 16: absurd paging is a 400 -----------------------------------------------------------------------

@pytest.mark.parametrize("query", ["page=9223372036854775807", "page=9223372036854775807&limit=500",
                                   "page=0", "page=-5", "limit=0", "limit=100000000000000000000"])
def test_absurd_library_paging_is_a_validation_error(client, make_user, query):
    viewer = make_user()
    assert client.login(viewer.username, viewer.password).status == 200
    reply = client.request("GET", f"/api/media/library?{query}")
    assert reply.status == 400 and reply.code == "VALIDATION_001", reply.body


def test_the_last_page_that_can_exist_still_answers(client, make_user):
    viewer = make_user()
    assert client.login(viewer.username, viewer.password).status == 200
    reply = client.request("GET", "/api/media/library?page=1000000&limit=500")
    assert reply.status == 200 and reply.json()["items"] == []


@pytest.mark.parametrize("query", ["cursor=9223372036854775808", "cursor=-1", "cursor=abc"])
def test_absurd_audit_paging_is_a_validation_error(owner, query):
    reply = owner.request("GET", f"/api/admin/audit?{query}")
    assert reply.status == 400 and reply.code == "VALIDATION_001", reply.body


# --- item 17: an admin cannot lock everyone out ------------------------------------------------------------

def test_the_last_active_admin_cannot_be_demoted_or_disabled(owner, owner_account, services):
    me = owner_account.id
    for change in ({"role": "member"}, {"is_active": False}):
        reply = owner.request("PATCH", f"/api/admin/users/{me}", change)
        assert reply.status == 400 and reply.code == "VALIDATION_001", change
        assert "administrator" in reply.json()["error"]["message"]
    assert services.users.get(me).role == "admin" and services.users.get(me).is_active


def test_an_admin_can_step_down_once_another_active_admin_exists(owner, owner_account, make_user, services):
    services.users.update(make_user(role="admin").id, is_active=False)  # a disabled admin does not count
    assert owner.request("PATCH", f"/api/admin/users/{owner_account.id}", {"role": "member"}).code \
        == "VALIDATION_001"
    second = make_user(role="admin")
    assert owner.request("PATCH", f"/api/admin/users/{owner_account.id}", {"role": "member"}).status == 200
    with pytest.raises(Exception, match="administrator"):
        services.users.update(second.id, role="member")
    with pytest.raises(Exception, match="administrator"):
        services.users.delete(second.id)


def test_a_disabled_admin_can_be_deleted_while_one_active_admin_remains(owner, make_user):
    disabled = make_user(role="admin")
    assert owner.request("PATCH", f"/api/admin/users/{disabled.id}", {"is_active": False}).status == 200
    assert owner.request("DELETE", f"/api/admin/users/{disabled.id}").status == 200


@pytest.mark.parametrize("host", ["203.0.113.5", "8.8.8.8", "2001:db8::1", "example.com", ""])
def test_a_listen_address_this_machine_does_not_have_is_refused_over_the_api(owner, services, host):
    reply = owner.request("PATCH", "/api/admin/settings", {"host": host})
    assert reply.status == 400 and reply.code == "VALIDATION_001", reply.body
    assert "host" in reply.json()["error"]["message"]
    assert services.settings.current.host == "0.0.0.0"


def test_listen_addresses_this_machine_has_are_accepted_over_the_api(owner, services):
    for host in ("127.0.0.1", "0.0.0.0"):
        reply = owner.request("PATCH", "/api/admin/settings", {"host": host})
        assert reply.status == 200 and services.settings.current.host == host


def test_the_key_store_cannot_be_switched_over_the_api(owner, services):
    current = services.settings.current.keystore
    for other in {"auto", "keychain", "file"} - {current}:
        reply = owner.request("PATCH", "/api/admin/settings", {"keystore": other})
        assert reply.status == 403 and reply.code == "SEC_003"
        assert "Master key storage" in reply.json()["error"]["message"]
    assert services.settings.current.keystore == current
    schema = owner.request("GET", "/api/admin/settings").json()["schema"]
    assert schema["keystore"]["local_only"] is True
    # Sending the settings back unchanged (as a form does) is not a change.
    unchanged = {"keystore": current, "local_workers": 3}
    assert owner.request("PATCH", "/api/admin/settings", unchanged).status == 200



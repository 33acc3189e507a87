"""The incidents, notifications, maintenance, data sources, users and tokens pages.

Each page is read by the role it is for, with real rows; every change is a form posted with
its CSRF token, and the database is read afterwards to see what the change did.
"""

from __future__ import annotations

import re
import socket
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from rulewatch.db import transaction
from rulewatch.models import (
    ApiToken,
    DataSource,
    Incident,
    MaintenanceWindow,
    Notification,
    User,
    Verification,
    utcnow,
)
from tests.auth import token_for
from tests.web.page_forms import csrf_token

PAGES = ("/incidents", "/notifications", "/maintenance", "/datasources", "/users", "/tokens")
ADMIN_PAGES = ("/datasources", "/users", "/tokens")
PASSWORD = "Page-Canary-4f2a9d"


def _post(client: FlaskClient, page: str, action: str, **form: Any) -> Any:
    """Post ``form`` to ``action`` with the CSRF token of ``page``; the answer, unredirected."""
    return client.post(action, data={"csrf_token": csrf_token(client, page), **form})


def _follow(client: FlaskClient, page: str, action: str, **form: Any) -> str:
    """Post, check the answer is a redirect back to ``page``, and return that page's HTML."""
    answer = _post(client, page, action, **form)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert answer.headers["Location"].endswith(page)
    return str(client.get(page).get_data(as_text=True))


def _count(app: Flask, model: Any, *where: Any) -> int:
    with app.extensions["rulewatch"].factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _add(app: Flask, *rows: Any) -> None:
    with transaction(app.extensions["rulewatch"].factory) as session:
        session.add_all(rows)


def _rule(app: Flask, name: str, **target: Any) -> int:
    body = {"name": name, "kind": "http", "interval_s": 60, "conditions": ["[STATUS] == 200"],
            "target": {"url": "http://shop.example/health"}}  # fmt: skip
    if target:
        body.update(kind="sql", conditions=["[VALUE] > 0"], target=target)
    answer = app.test_client().post("/api/v1/rules", json=body)
    assert answer.status_code == 201, answer.get_json()
    rule_id: int = answer.get_json()["id"]
    return rule_id


def _viewer(app: Flask) -> FlaskClient:
    return app.test_client(token=token_for(app, "vera", "viewer"))  # type: ignore[call-arg]


def test_it_lists_open_incidents_first_then_resolved_ones_with_why_their_rule_failed(
    app: Flask,
) -> None:
    viewer = _viewer(app)
    assert "No incidents yet" in viewer.get("/incidents").get_data(as_text=True)
    rule_id, now = _rule(app, "checkout"), utcnow()
    failure = Verification(id=str(uuid.uuid4()), rule_id=rule_id, status="fail",
                           started_at=now - timedelta(minutes=5), duration_ms=12.0,
                           conditions=[], measured={},
                           error="condition not met: 503 == 200")  # fmt: skip
    _add(app, failure,
         Incident(rule_id=rule_id, rule_name="checkout", opened_at=now - timedelta(hours=2),
                  resolved_at=now - timedelta(hours=1, minutes=30), resolve_reason="passes again"),
         Incident(rule_id=rule_id, rule_name="checkout", opened_at=now - timedelta(minutes=10)),
         Incident(rule_id=None, rule_name="old rule", opened_at=now - timedelta(days=3),
                  resolved_at=now - timedelta(days=2)))  # fmt: skip
    html = viewer.get("/incidents").get_data(as_text=True)
    opened, resolved = html.split('id="open-incidents"')[1].split('id="resolved-incidents"')
    assert f'href="/rules/{rule_id}"' in opened and "condition not met: 503 == 200" in opened
    assert "10 min" in opened and "Open (1)" in html
    assert "30 min" in resolved and "passes again" in resolved
    assert "old rule" in resolved and "(deleted)" in resolved and "1 d" in resolved
    assert resolved.index("checkout") < resolved.index("old rule")


def test_it_shows_alert_emails_with_their_send_status_and_filters_them_by_status(
    app: Flask,
) -> None:
    viewer = _viewer(app)
    assert "No notifications yet" in viewer.get("/notifications").get_data(as_text=True)
    rule_id = _rule(app, "checkout")

    def email(subject: str, status: str, **more: Any) -> Notification:
        return Notification(rule_id=rule_id, kind="firing", recipients=["ops@example.com"],
                            subject=subject, body_text="", body_html="", status=status,
                            **more)  # fmt: skip

    _add(app, email("[FIRING] checkout", "sent", attempts=1, sent_at=utcnow()),
         email("[STILL FIRING] checkout", "failed", attempts=5,
               last_error="550 mailbox unavailable"))  # fmt: skip
    html = viewer.get("/notifications").get_data(as_text=True)
    assert 'data-status="sent"' in html and 'data-status="failed"' in html
    assert "550 mailbox unavailable" in html and "ops@example.com" in html
    assert f'href="/rules/{rule_id}"' in html
    failed = viewer.get("/notifications?status=failed&limit=200").get_data(as_text=True)
    assert "[STILL FIRING] checkout" in failed and "[FIRING] checkout" not in failed
    assert "No notification is pending" in viewer.get("/notifications?status=pending").text


def test_editors_plan_and_delete_maintenance_windows_that_viewers_only_see(app: Flask) -> None:
    rule_id = _rule(app, "checkout")
    editor = app.test_client(token=token_for(app, "ed", "editor"))  # type: ignore[call-arg]
    start = (utcnow() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    html = _follow(editor, "/maintenance", "/maintenance", name="db upgrade", scope="rule",
                   rule_id=str(rule_id), starts_at=start, duration_min="90", timezone="UTC",
                   comment="planned")  # fmt: skip
    assert "Maintenance window &#39;db upgrade&#39; planned." in html
    with app.extensions["rulewatch"].factory() as session:
        [row] = session.scalars(select(MaintenanceWindow)).all()
        assert (row.scope, row.rule_id, row.duration_s) == ("rule", rule_id, 5400)
    viewer = _viewer(app)
    seen = viewer.get("/maintenance").get_data(as_text=True)
    assert 'data-state="active"' in seen and "1 h 30 min" in seen and "checkout" in seen
    assert 'id="new-window"' not in seen and "/delete" not in seen
    refused = viewer.post(
        f"/maintenance/{row.id}/delete", data={"csrf_token": csrf_token(viewer, "/maintenance")}
    )
    assert refused.status_code == 403 and _count(app, MaintenanceWindow) == 1
    html = _follow(editor, "/maintenance", f"/maintenance/{row.id}/delete")
    assert "deleted" in html and _count(app, MaintenanceWindow) == 0


def test_a_bad_maintenance_window_shows_each_error_next_to_its_field_and_stores_nothing(
    app: Flask,
) -> None:
    editor = app.test_client(token=token_for(app, "ed", "editor"))  # type: ignore[call-arg]
    answer = _post(editor, "/maintenance", "/maintenance", name="db upgrade", scope="all",
                   starts_at="2030-01-01T02:00", duration_min="0", timezone="UTC")  # fmt: skip
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    field = html.split('id="field-duration_min"')[1].split('id="field-cron"')[0]
    assert "whole number of minutes from 1 to 44640" in field and 'aria-invalid="true"' in field
    answer = _post(editor, "/maintenance", "/maintenance", name="nightly", scope="all",
                   starts_at="2030-01-01T02:00", duration_min="60", cron="0 2 * * *",
                   timezone="Mars/Olympus")  # fmt: skip
    field = answer.get_data(as_text=True).split('id="field-timezone"')[1]
    assert answer.status_code == 422 and "Mars/Olympus" in field.split("</div>")[0]
    assert 'value="nightly"' in answer.get_data(as_text=True)  # what was typed stays
    assert _count(app, MaintenanceWindow) == 0


def test_it_adds_checks_refuses_and_removes_data_sources_without_showing_a_password(
    app: Flask, tmp_path: Path
) -> None:
    admin, seen = app.test_client(), []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    dsn = f"postgresql+psycopg://reader:{PASSWORD}@127.0.0.1:{closed_port}/warehouse"
    seen.append(_follow(admin, "/datasources", "/datasources", name="warehouse", dsn=dsn))
    assert "Stored data source &#39;warehouse&#39;." in seen[-1]
    assert "postgresql+psycopg on 127.0.0.1" in seen[-1]
    seen.append(_follow(admin, "/datasources", "/datasources/warehouse/check"))
    assert "failed its check" in seen[-1]
    bad = _post(admin, "/datasources", "/datasources", name="Bad Name", dsn=dsn)
    seen.append(bad.get_data(as_text=True))
    assert bad.status_code == 422 and "a data source name is" in seen[-1]
    assert 'type="password"' in seen[-1] and _count(app, DataSource) == 1
    (tmp_path / "shop.db").touch()
    seen.append(_follow(admin, "/datasources", "/datasources", name="shop",
                        dsn=f"sqlite:///{tmp_path / 'shop.db'}"))  # fmt: skip
    seen.append(_follow(admin, "/datasources", "/datasources/shop/check"))
    assert "works: connected and ran SELECT 1" in seen[-1]
    rule_id = _rule(app, "orders", datasource="warehouse", query="SELECT 1")
    seen.append(_follow(admin, "/datasources", "/datasources/warehouse/delete"))
    assert "Not removed:" in seen[-1] and "is used by 1 rule(s): &#39;orders&#39;" in seen[-1]
    assert f'href="/rules/{rule_id}"' in seen[-1] and _count(app, DataSource) == 2
    seen.append(_follow(admin, "/datasources", "/datasources/shop/delete"))
    assert "Removed data source &#39;shop&#39;." in seen[-1] and _count(app, DataSource) == 1
    seen += [admin.get(page).get_data(as_text=True) for page in PAGES]
    assert not [html for html in seen if PASSWORD in html]


def test_it_creates_a_user_with_a_password_shown_once_changes_their_role_and_deletes_them(
    app: Flask,
) -> None:
    admin = app.test_client()
    answer = _post(admin, "/users", "/users", name="Nora", role="viewer", password="")
    assert answer.status_code == 200
    password = re.search(r'id="password-text">([^<]+)<', answer.get_data(as_text=True))
    assert password and len(password.group(1)) >= 12
    assert password.group(1) not in admin.get("/users").get_data(as_text=True)
    with app.extensions["rulewatch"].factory() as session:
        nora = session.scalars(select(User).where(User.name == "nora")).one()
    html = _follow(admin, "/users", f"/users/{nora.id}/role", role="editor")
    assert "nora is now editor." in html
    assert _count(app, User, User.name == "nora", User.role == "editor") == 1
    short = _post(admin, "/users", "/users", name="otto", role="viewer", password="short")
    assert short.status_code == 422 and "at least 12 characters" in short.get_data(as_text=True)
    html = _follow(admin, "/users", f"/users/{nora.id}/delete")
    assert "User &#39;nora&#39; deleted" in html and _count(app, User, User.name == "nora") == 0
    assert _count(app, User, User.name == "otto") == 0


def test_it_refuses_to_demote_or_delete_the_last_admin(app: Flask) -> None:
    admin = app.test_client()
    with app.extensions["rulewatch"].factory() as session:
        [only] = session.scalars(select(User).where(User.role == "admin")).all()
    for action, form in ((f"/users/{only.id}/role", {"role": "viewer"}),
                         (f"/users/{only.id}/delete", {})):  # fmt: skip
        html = _follow(admin, "/users", action, **form)
        assert "is the last admin: make another user admin first" in html
    assert _count(app, User, User.id == only.id, User.role == "admin") == 1


def test_a_token_s_secret_is_shown_once_and_the_token_can_be_revoked(app: Flask) -> None:
    admin = app.test_client()
    with app.extensions["rulewatch"].factory() as session:
        me = session.scalars(select(User).where(User.role == "admin")).one()
    answer = _post(admin, "/tokens", "/tokens", user=str(me.id), label="deploy pipeline")
    found = re.search(r'<code class="secret" id="token-text">(rw_[^<]+)</code>', answer.text)
    assert answer.status_code == 200 and found
    secret = found.group(1)
    listed = admin.get("/tokens").get_data(as_text=True)
    assert secret not in listed and secret[:10] in listed and "deploy pipeline" in listed
    assert app.test_client(token=secret).get("/api/v1/me").status_code == 200  # type: ignore[call-arg]
    with app.extensions["rulewatch"].factory() as session:
        token_id = session.scalars(
            select(ApiToken.id).where(ApiToken.label == "deploy pipeline")
        ).one()
    html = _follow(admin, "/tokens", f"/tokens/{token_id}/revoke")
    assert "revoked." in html and 'id="token-text"' not in html and secret not in html
    assert app.test_client(token=secret).get("/api/v1/me").status_code == 401  # type: ignore[call-arg]
    nobody = _post(admin, "/tokens", "/tokens", user="999999", label="x")
    assert nobody.status_code == 422 and "choose the user the token acts as" in nobody.text


def test_admin_pages_refuse_viewers_and_every_page_sends_strangers_to_sign_in(
    app: Flask,
) -> None:
    viewer, stranger = _viewer(app), app.test_client(token=None)  # type: ignore[call-arg]
    for page in PAGES:
        answer = viewer.get(page)
        assert answer.status_code == (403 if page in ADMIN_PAGES else 200), page
        gone = stranger.get(page)
        assert gone.status_code == 302 and "/login" in gone.headers["Location"], page
    assert "needs the admin role" in viewer.get("/users").get_data(as_text=True)


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(app: Flask) -> None:
    form = {"name": "someone", "role": "viewer", "password": "long enough password",
            "dsn": "sqlite://", "label": "x", "starts_at": "2030-01-01T00:00",
            "duration_min": "60", "scope": "all"}  # fmt: skip
    models = (MaintenanceWindow, DataSource, User, ApiToken)
    before = [_count(app, m) for m in models]
    admin = app.test_client()
    for action in ("/maintenance", "/datasources", "/users", "/tokens", "/users/1/delete"):
        answer = admin.post(action, data=form)
        assert answer.status_code == 400, action
        assert "Form expired" in answer.get_data(as_text=True)
    assert [_count(app, m) for m in models] == before

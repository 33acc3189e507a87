"""Admin pages: data sources, users and tokens.

Thin views over the services the API uses. A change is a form posted with its CSRF token,
answered by a redirect and a flash, or by the page again with each error next to its field
(422). A token's text and a generated password are shown on the answer that made them, once.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # not in stubs 3.2

from rulewatch.domain.access import ROLES
from rulewatch.models import utcnow
from rulewatch.services.datasources import (
    DataSourceInfo,
    DataSourceInSettings,
    DataSourceInUse,
    DataSourceInvalid,
    DataSourceNotFound,
    check_datasource,
    datasource_to_dict,
    delete_datasource,
    list_datasources,
    put_datasource,
    rules_using,
)
from rulewatch.services.tokens import (
    TokenInvalid,
    TokenNotFound,
    create_token,
    find_token,
    list_tokens,
    revoke_token,
)
from rulewatch.services.users import (
    LastAdmin,
    UserInvalid,
    UserNotFound,
    change_user,
    create_user,
    delete_user,
    generate_password,
    get_user,
    list_users,
)
from rulewatch.web.auth import caller
from rulewatch.web.common import rt, write
from rulewatch.web.ui import page_role, ui
from rulewatch.web.ui.forms import (
    DataSourceForm,
    NewTokenForm,
    NewUserForm,
    RoleForm,
    show_errors,
)


@ui.get("/datasources")
@page_role("admin")
def datasources() -> str:
    """Data sources for sql rules: where each database is and who reads it; never its DSN."""
    return _datasources_page(DataSourceForm())


@ui.post("/datasources")
@page_role("admin")
def put_one_datasource() -> ResponseReturnValue:
    """Store a data source, or replace its DSN (kept encrypted, never shown back)."""
    form = DataSourceForm()
    if form.validate_on_submit():
        name = (form.name.data or "").strip()
        try:
            with write() as session:
                _, created = put_datasource(session, name, form.dsn.data, rt().dsn_cipher, utcnow())
        except DataSourceInvalid as exc:
            show_errors(form, exc.errors)
        except IntegrityError:
            form.form_errors.append("another request stored this data source at the same moment:"
                                    " send it again")  # fmt: skip
        else:
            done = "Stored data source" if created else "Replaced the DSN of data source"
            flash(f"{done} {name!r}.", "success")
            return redirect(url_for("ui.datasources"))
    return _datasources_page(form), 422


@ui.post("/datasources/<name>/delete")
@page_role("admin")
def delete_one_datasource(name: str) -> ResponseReturnValue:
    """Forget a stored data source; refused while rules read from it or settings define it."""
    try:
        with write() as session:
            delete_datasource(session, name, rt().settings.datasources)
    except (DataSourceInUse, DataSourceInSettings, DataSourceNotFound) as exc:
        flash(f"Not removed: {exc}.", "error")
    else:
        flash(f"Removed data source {name!r}.", "success")
    return redirect(url_for("ui.datasources"))


@ui.post("/datasources/<name>/check")
@page_role("admin")
def check_one_datasource(name: str) -> ResponseReturnValue:
    """Connect and run SELECT 1 as the data source's rules would; the flash says how it went."""
    runtime = rt()
    try:
        seen = check_datasource(runtime.factory, name, runtime.settings.datasources,
                                runtime.dsn_cipher)  # fmt: skip
    except DataSourceNotFound as exc:
        flash(f"Not checked: {exc}.", "error")
        return redirect(url_for("ui.datasources"))
    problem = seen.fault or seen.failure
    if problem:
        flash(f"Data source {name!r} failed its check: {problem}", "error")
    else:
        took = f" in {seen.response_time_ms:.0f} ms" if seen.response_time_ms is not None else ""
        flash(f"Data source {name!r} works: connected and ran SELECT 1{took}.", "success")
    return redirect(url_for("ui.datasources"))


def _datasources_page(form: DataSourceForm) -> str:
    runtime = rt()
    with runtime.factory() as session:
        infos = list_datasources(session, runtime.settings.datasources, runtime.dsn_cipher)
        rows = [_datasource(session, info) for info in infos]
    return render_template("ui/datasources.html", title="Data sources", rows=rows, form=form)


def _datasource(session: Session, info: DataSourceInfo) -> dict[str, Any]:
    """What the API shows of a data source, its creation time, and the rules that read it."""
    row = datasource_to_dict(info)
    return {**row, "created_at": info.created_at, "rules": rules_using(session, info.name)}


@ui.get("/users")
@page_role("admin")
def users() -> str:
    """Users and their roles."""
    return _users_page(NewUserForm())


@ui.post("/users")
@page_role("admin")
def new_user() -> ResponseReturnValue:
    """Create a user; a generated password is shown on this answer only."""
    form = NewUserForm()
    if form.validate_on_submit():
        generated = not form.password.data
        password = generate_password() if generated else str(form.password.data)
        try:
            with write() as session:
                name = create_user(session, form.name.data, form.role.data, password, utcnow()).name
        except UserInvalid as exc:
            show_errors(form, exc.errors)
        except IntegrityError:
            form.name.errors = ["another user took this name at the same moment: choose another"]
        else:
            if generated:
                return _users_page(NewUserForm(formdata=None), created=(name, password))
            flash(f"User {name!r} created with the password you typed.", "success")
            return redirect(url_for("ui.users"))
    return _users_page(form), 422


@ui.post("/users/<int:user_id>/role")
@page_role("admin")
def change_role(user_id: int) -> ResponseReturnValue:
    """Give a user another role; the last admin stays admin."""
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Not changed: choose viewer, editor or admin.", "error")
        return redirect(url_for("ui.users"))
    try:
        with write() as session:
            user = change_user(session, get_user(session, user_id), {"role": form.role.data})
            name = user.name
    except (LastAdmin, UserNotFound, UserInvalid) as exc:
        flash(f"Not changed: {exc}.", "error")
    else:
        flash(f"{name} is now {form.role.data}.", "success")
    return redirect(url_for("ui.users"))


@ui.post("/users/<int:user_id>/delete")
@page_role("admin")
def delete_one_user(user_id: int) -> ResponseReturnValue:
    """Delete a user, their sessions and tokens; never the last admin."""
    try:
        with write() as session:
            user = get_user(session, user_id)
            name = user.name
            delete_user(session, user)
    except (LastAdmin, UserNotFound) as exc:
        flash(f"Not deleted: {exc}.", "error")
    else:
        flash(f"User {name!r} deleted, with their tokens.", "success")
    return redirect(url_for("ui.users"))


def _users_page(form: NewUserForm, created: tuple[str, str] | None = None) -> str:
    with rt().factory() as session:
        rows = list_users(session)
        return render_template("ui/users.html", title="Users", rows=rows, form=form,
                               roles=ROLES, created=created)  # fmt: skip


@ui.get("/tokens")
@page_role("admin")
def tokens() -> str:
    """API tokens: whose, what for, when last used, revoked or not; never their text."""
    return _tokens_page(NewTokenForm())


@ui.post("/tokens")
@page_role("admin")
def new_token() -> ResponseReturnValue:
    """Create a token for a user; its text is shown on this answer only."""
    form = NewTokenForm()
    if form.validate_on_submit():
        try:
            with write() as session:
                user = get_user(session, form.user.data or "")
                label = (form.label.data or "").strip() or None
                token, text = create_token(session, user, label, utcnow())
                created = {"text": text, "user": user.name, "label": token.label}
        except UserNotFound:
            form.user.errors = ["choose the user the token acts as"]
        except TokenInvalid as exc:
            show_errors(form, exc.errors)
        else:
            return _tokens_page(NewTokenForm(formdata=None), created=created)
    return _tokens_page(form), 422


@ui.post("/tokens/<int:token_id>/revoke")
@page_role("admin")
def revoke_one_token(token_id: int) -> ResponseReturnValue:
    """Revoke a token: it is refused from the next request on."""
    try:
        with write() as session:
            token = find_token(session, str(token_id))
            shown = f"{token.prefix}… of {token.user.name}"
            revoked = revoke_token(token, utcnow())
    except TokenNotFound as exc:
        flash(f"Nothing revoked: {exc}.", "error")
    else:
        flash(f"Token {shown} {'revoked' if revoked else 'was revoked already'}.", "success")
    return redirect(url_for("ui.tokens"))


def _tokens_page(form: NewTokenForm, created: dict[str, Any] | None = None) -> str:
    with rt().factory() as session:
        people = list_users(session)
        form.user.choices = [SelectChoice(str(u.id), f"{u.name} ({u.role})") for u in people]
        if not form.user.data:
            form.user.data = str(caller().id)
        rows = list_tokens(session)
        return render_template("ui/tokens.html", title="Tokens", rows=rows, form=form,
                               created=created)  # fmt: skip

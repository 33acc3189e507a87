"""Signing in and out of the pages."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from rulewatch.web.auth import SignInRefused, password_sign_in, sign_out
from rulewatch.web.ui import safe_next, ui
from rulewatch.web.ui.forms import LoginForm


@ui.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; sign in and go on to the page asked for."""
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            password_sign_in(form.username.data or "", form.password.data or "")
        except SignInRefused as exc:
            form.form_errors.append(str(exc))
            status = 429 if exc.wait_s else 401
        else:
            return redirect(safe_next(request.args.get("next")))
    elif request.method == "POST":
        status = 400
    return render_template("ui/login.html", form=form, title="Sign in"), status


@ui.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (a form post with its CSRF token) and go to the login page."""
    sign_out()
    flash("You are signed out.", "info")
    return redirect(url_for("ui.login"))

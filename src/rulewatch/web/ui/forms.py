"""The pages' forms (Flask-WTF: each carries a CSRF token and validates on submit)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import InputRequired, Length


class LoginForm(FlaskForm):
    """The login form: a username and a password."""

    username = StringField("Username", [InputRequired(), Length(max=64)])
    password = PasswordField("Password", [InputRequired(), Length(max=1024)])

"""Access endpoints on the api blueprint: session sign-in and out, the caller, users, tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response, jsonify
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rulewatch.models import User, utcnow
from rulewatch.schemas import FieldError
from rulewatch.services.tokens import (
    TokenInvalid,
    TokenNotFound,
    create_token,
    find_token,
    list_tokens,
    revoke_token,
    token_to_dict,
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
    user_to_dict,
)
from rulewatch.shapes import CreatedToken, CreatedUser, Me, Tokens, UserOut, Users, answer
from rulewatch.web.api import api
from rulewatch.web.api_models import NewToken, NewUser, SignIn, UserChange
from rulewatch.web.api_spec import TextArg, documented
from rulewatch.web.auth import (
    PUBLIC,
    WRONG_CREDENTIALS,
    Principal,
    SignInRefused,
    caller,
    password_sign_in,
    role,
    sign_out,
)
from rulewatch.web.common import json_body, rt, write
from rulewatch.web.errors import ApiError, error_response

TOKEN_USER = TextArg("user", "only this user's tokens (a name or an id)")


@api.errorhandler(UserNotFound)
@api.errorhandler(TokenNotFound)
def _not_found(exc: LookupError) -> tuple[Response, int]:
    return error_response(ApiError(404, "not_found", str(exc)))


@api.errorhandler(LastAdmin)
def _last_admin(exc: LastAdmin) -> tuple[Response, int]:
    return error_response(ApiError(409, "last_admin", str(exc), [FieldError("role", str(exc))]))


def _me(principal: Principal) -> dict[str, Any]:
    return answer(Me, id=principal.id, name=principal.name, role=principal.role,
                  via=principal.via, token_id=principal.token_id)  # fmt: skip


@api.post("/session")
@role(PUBLIC)
@documented(Me, body=SignIn, errors=[401, 429, 503])
def post_session() -> Response:
    """Sign in with a username and password; the session cookie carries the rest."""
    body = json_body()
    name, password = body.get("username"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        given = (("username", name), ("password", password))
        missing = [FieldError(f, "required, as text") for f, v in given if not isinstance(v, str)]
        raise ApiError(400, "bad_parameter", "give username and password as text", missing)
    try:
        principal = password_sign_in(name, password)
    except SignInRefused as exc:
        if exc.wait_s:
            raise ApiError(429, "too_many_attempts", str(exc), [FieldError("username", str(exc))],
                           headers={"Retry-After": str(exc.wait_s)}) from None  # fmt: skip
        raise ApiError(
            401, "invalid_credentials", WRONG_CREDENTIALS,
            [FieldError("username", WRONG_CREDENTIALS), FieldError("password", WRONG_CREDENTIALS)],
            headers={"WWW-Authenticate": 'Bearer realm="rulewatch"'},
        ) from None  # fmt: skip
    return jsonify(_me(principal))


@api.delete("/session")
@role("viewer")
@documented(None, 204)
def delete_session() -> tuple[str, int]:
    """Sign out: the session cookie no longer signs anyone in."""
    sign_out()
    return "", 204


@api.get("/me")
@role("viewer")
@documented(Me)
def get_me() -> Response:
    """Who the caller is, their role, and whether a session or a token signed them in."""
    return jsonify(_me(caller()))


@contextmanager
def _write_user() -> Iterator[Session]:
    """A write whose unique-name clash, lost to a concurrent request, answers 422 on name."""
    try:
        with write() as session:
            yield session
    except IntegrityError:
        message = "another user took this name while this one was saved: choose another name"
        raise UserInvalid([FieldError("name", message)]) from None


@api.get("/users")
@role("admin")
@documented(Users)
def get_users() -> Response:
    """Every user with their role and last sign-in (never a password hash)."""
    with rt().factory() as session:
        return jsonify(answer(Users, users=[user_to_dict(u) for u in list_users(session)]))


@api.post("/users")
@role("admin")
@documented(CreatedUser, 201, body=NewUser, errors=[422])
def post_user() -> tuple[Response, int]:
    """Create a user; without a password one is generated and returned, this once."""
    body = json_body()
    extra = sorted(set(body) - set(NewUser.model_fields))
    if extra:
        raise UserInvalid([FieldError(f, "not a field of a user (name, role, password)")
                           for f in extra])  # fmt: skip
    generated = "password" not in body
    password = generate_password() if generated else body["password"]
    with _write_user() as session:
        user = create_user(session, body.get("name"), body.get("role"), password, utcnow())
        created = user_to_dict(user)
    shown = {**created, "password": password} if generated else created
    return jsonify(answer(CreatedUser, **shown)), 201


@api.patch("/users/<int:user_id>")
@role("admin")
@documented(UserOut, body=UserChange, errors=[409, 422])
def patch_user(user_id: int) -> Response:
    """Change a user's role or password (a new password ends their sessions)."""
    body = json_body()
    with write() as session:
        return jsonify(user_to_dict(change_user(session, get_user(session, user_id), body)))


@api.delete("/users/<int:user_id>")
@role("admin")
@documented(None, 204, errors=[409])
def delete_one_user(user_id: int) -> tuple[str, int]:
    """Delete a user, their sessions and their tokens."""
    with write() as session:
        delete_user(session, get_user(session, user_id))
    return "", 204


@api.get("/tokens")
@role("admin")
@documented(Tokens, query=[TOKEN_USER], errors=[404])
def get_tokens() -> Response:
    """Tokens, newest first, revoked ones included: prefix, user, label, last use."""
    with rt().factory() as session:
        name = TOKEN_USER.given()
        user = get_user(session, name) if name is not None else None
        tokens = [token_to_dict(t) for t in list_tokens(session, user)]
        return jsonify(answer(Tokens, tokens=tokens))


@api.post("/tokens")
@role("admin")
@documented(CreatedToken, 201, body=NewToken, errors=[422])
def post_token() -> tuple[Response, int]:
    """Create a token for a user (the caller by default); its text is in this answer only."""
    body = json_body()
    extra = sorted(set(body) - set(NewToken.model_fields))
    if extra:
        raise TokenInvalid([FieldError(f, "not a field of a token (user, label)") for f in extra])
    with write() as session:
        user = _token_user(session, body.get("user", caller().id))
        token, text = create_token(session, user, body.get("label"), utcnow())
        return jsonify(answer(CreatedToken, **token_to_dict(token), token=text)), 201


def _token_user(session: Session, key: Any) -> User:
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise TokenInvalid([FieldError("user", f"give a user's name or id, not {key!r}")])
    try:
        return get_user(session, key)
    except UserNotFound as exc:
        raise TokenInvalid([FieldError("user", str(exc))]) from None


@api.delete("/tokens/<int:token_id>")
@role("admin")
@documented(None, 204)
def delete_token(token_id: int) -> tuple[str, int]:
    """Revoke a token: it is refused from the next request on."""
    with write() as session:
        revoke_token(find_token(session, str(token_id)), utcnow())
    return "", 204

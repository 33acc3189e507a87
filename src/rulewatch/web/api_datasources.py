"""Data source endpoints on the api blueprint (admin only); no response ever holds a DSN."""

from __future__ import annotations

from typing import Annotated

from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from rulewatch.models import utcnow
from rulewatch.schemas import FieldError
from rulewatch.services.datasources import (
    MAX_DSN,
    DataSourceInSettings,
    DataSourceInUse,
    DataSourceInvalid,
    DataSourceNotFound,
    check_datasource,
    datasource_to_dict,
    delete_datasource,
    get_datasource,
    list_datasources,
    put_datasource,
)
from rulewatch.shapes import (
    DataSourceCheck,
    DataSourceOut,
    DataSources,
    StoredDataSource,
    answer,
)
from rulewatch.web.api import api
from rulewatch.web.api_spec import documented
from rulewatch.web.auth import role
from rulewatch.web.common import json_body, rt, write
from rulewatch.web.errors import ApiError, error_response


class DataSourceIn(BaseModel):
    """A data source's DSN: kept encrypted, never shown back."""

    model_config = ConfigDict(extra="forbid")
    dsn: Annotated[str, StringConstraints(min_length=1, max_length=MAX_DSN)] = Field(
        examples=["postgresql+psycopg://reader:secret@db.example/warehouse"],
        description="a SQLAlchemy URL: postgresql+psycopg, mysql+pymysql, mariadb+pymysql, sqlite",
    )


@api.errorhandler(DataSourceNotFound)
def _not_found(exc: DataSourceNotFound) -> tuple[Response, int]:
    return error_response(ApiError(404, "not_found", str(exc)))


@api.errorhandler(DataSourceInUse)
def _in_use(exc: DataSourceInUse) -> tuple[Response, int]:
    users = [
        FieldError("name", f"used by rule {name!r} (id {rule_id})") for rule_id, name in exc.rules
    ]
    return error_response(ApiError(409, "datasource_in_use", str(exc), users))


@api.errorhandler(DataSourceInSettings)
def _in_settings(exc: DataSourceInSettings) -> tuple[Response, int]:
    return error_response(ApiError(409, "datasource_in_settings", str(exc)))


@api.get("/datasources")
@role("admin")
@documented(DataSources)
def get_datasources() -> Response:
    """Data sources, stored and from settings: dialect, driver, host; never a DSN."""
    runtime = rt()
    with runtime.factory() as session:
        infos = list_datasources(session, runtime.settings.datasources, runtime.dsn_cipher)
        return jsonify(answer(DataSources, datasources=[datasource_to_dict(i) for i in infos]))


@api.get("/datasources/<name>")
@role("admin")
@documented(DataSourceOut)
def get_one_datasource(name: str) -> Response:
    """One data source, as the listing shows it."""
    runtime = rt()
    with runtime.factory() as session:
        return jsonify(datasource_to_dict(get_datasource(
            session, name, runtime.settings.datasources, runtime.dsn_cipher)))  # fmt: skip


@api.put("/datasources/<name>")
@role("admin")
@documented(StoredDataSource, body=DataSourceIn, errors=[409, 422])
def put_one_datasource(name: str) -> Response:
    """Store a data source, or replace its DSN; the DSN is kept encrypted, never shown."""
    body = json_body()
    extra = sorted(set(body) - {"dsn"})
    if extra:
        raise DataSourceInvalid([_not_a_field(f) for f in extra])
    runtime = rt()
    try:
        with write() as session:
            row, created = put_datasource(
                session, name, body.get("dsn"), runtime.dsn_cipher, utcnow()
            )
            info = get_datasource(
                session, row.name, runtime.settings.datasources, runtime.dsn_cipher
            )
    except IntegrityError:
        message = "another request stored this data source at the same moment: send it again"
        raise ApiError(409, "conflict", message) from None
    return jsonify(answer(StoredDataSource, **datasource_to_dict(info), created=created))


def _not_a_field(name: str) -> FieldError:
    return FieldError(name, "not a field of a data source (dsn)")


@api.delete("/datasources/<name>")
@role("admin")
@documented(None, 204, errors=[409])
def delete_one_datasource(name: str) -> tuple[str, int]:
    """Forget a stored data source; 409 while rules read from it, naming them."""
    with write() as session:
        delete_datasource(session, name, rt().settings.datasources)
    return "", 204


@api.post("/datasources/<name>/check")
@role("admin")
@documented(DataSourceCheck)
def check_one_datasource(name: str) -> Response:
    """Connect and run ``SELECT 1`` as its rules would; the answer says how it went."""
    runtime = rt()
    seen = check_datasource(runtime.factory, name, runtime.settings.datasources, runtime.dsn_cipher)
    problem = seen.fault or seen.failure
    return jsonify(answer(DataSourceCheck, name=name, ok=problem is None, error=problem,
                          response_time_ms=seen.response_time_ms))  # fmt: skip

"""Changing and finding rules: a new schedule takes effect at once, even for a claimed rule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.db import transaction
from rulewatch.models import Rule, utcnow
from rulewatch.services.rules import RuleNotFound, create_rule, get_rule, update_rule
from tests.targets import http_rule

TOKEN = "00000000-0000-4000-8000-000000000001"


def _claimed_rule(factory: sessionmaker[Session]) -> int:
    now = utcnow()
    with transaction(factory) as session:
        rule = create_rule(session, http_rule("http://127.0.0.1:9/x"), now)
        rule.claimed_until, rule.claim_token = now + timedelta(minutes=5), TOKEN
        return rule.id


def _update(factory: sessionmaker[Session], rule_id: int, changes: dict[str, Any]) -> Rule:
    with transaction(factory) as session:
        update_rule(session, session.get_one(Rule, rule_id), changes, utcnow())
    with factory() as session:
        return session.get_one(Rule, rule_id)


def test_it_releases_the_claim_when_the_schedule_changes(factory: sessionmaker[Session]) -> None:
    rule = _update(factory, _claimed_rule(factory), {"interval_s": 300})
    assert (rule.claimed_until, rule.claim_token) == (None, None)


def test_it_releases_the_claim_when_the_timezone_changes(factory: sessionmaker[Session]) -> None:
    rule_id = _claimed_rule(factory)
    rule = _update(factory, rule_id, {"cron": "0 3 * * *", "timezone": "Europe/Paris"})
    assert (rule.claimed_until, rule.claim_token) == (None, None)


def test_it_keeps_the_claim_when_the_schedule_stays(factory: sessionmaker[Session]) -> None:
    rule = _update(factory, _claimed_rule(factory), {"tags": ["x"], "interval_s": 60})
    assert rule.claim_token == TOKEN
    assert rule.claimed_until is not None


@pytest.mark.parametrize("key", ["²", "99999999999999999999", "9" * 5000, "0", 2**31])
def test_it_finds_no_rule_for_a_key_that_cannot_be_an_id(
    factory: sessionmaker[Session], key: int | str
) -> None:
    _claimed_rule(factory)
    with factory() as session, pytest.raises(RuleNotFound, match="no rule with id or name"):
        get_rule(session, key)


def test_it_finds_a_rule_by_a_numeric_name_that_is_not_an_id(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        create_rule(session, http_rule("http://127.0.0.1:9/x", name="404"), utcnow())
    with factory() as session:
        assert get_rule(session, "404").name == "404"

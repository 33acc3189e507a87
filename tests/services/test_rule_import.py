"""Importing rules in bulk: all validated first, every problem named, then set-based writes
that leave unchanged rules alone and keep each rule's schedule and claim as an edit would."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rulewatch.config import AlertDefaults
from rulewatch.db import transaction
from rulewatch.domain.schedule import first_due
from rulewatch.models import Incident, Notification, Rule, utcnow
from rulewatch.probes import ProbeContext
from rulewatch.schemas import RuleInvalid, validate_rule
from rulewatch.services.rule_import import CHUNK, ImportCounts, import_rules
from rulewatch.services.rules import export_rules
from rulewatch.services.verification import Alerting, Job, verify_one
from tests.targets import http_rule

TOKEN = "00000000-0000-4000-8000-000000000001"
DEFAULTS = AlertDefaults()


def _import(factory: sessionmaker[Session], items: list[Any], **kw: Any) -> ImportCounts:
    with transaction(factory) as session:
        return import_rules(session, items, utcnow(), **kw)


def _rules(factory: sessionmaker[Session]) -> dict[str, Rule]:
    with factory() as session:
        return {rule.name: rule for rule in session.scalars(select(Rule))}


def _rule(name: str, **extra: Any) -> dict[str, Any]:
    return http_rule(f"http://127.0.0.1:9/{name}", name=name, **extra)


def test_it_creates_rules_spread_over_their_interval_as_one_by_one_creation_does(
    factory: sessionmaker[Session],
) -> None:
    count = CHUNK + 5  # more than one chunk of names
    before = utcnow()
    items = [_rule(f"r{i:04}", tags=["shop", f"n{i % 3}"]) for i in range(count)]
    items.append({**_rule("nightly"), "interval_s": None, "cron": "0 3 * * *"})
    assert _import(factory, items) == ImportCounts(count + 1, 0, 0)
    rules = _rules(factory)
    assert len(rules) == count + 1
    offsets = set()
    for rule in rules.values():
        spec = validate_rule(next(i for i in items if i["name"] == rule.name))
        assert before <= rule.created_at == rule.updated_at <= utcnow()
        assert rule.next_due_at == first_due(spec.schedule, rule.id, rule.created_at), rule.name
        if spec.interval_s:
            offsets.add(int((rule.next_due_at - rule.created_at).total_seconds()))
    assert len(offsets) == 60, "interval rules' first runs cover their whole minute"
    with factory() as session:
        exported = {r["name"]: r for r in export_rules(session)}
    assert exported["r0004"]["tags"] == ["n1", "shop"]
    assert exported["nightly"]["cron"] == "0 3 * * *"


def test_it_leaves_unchanged_rules_alone_and_counts_them(factory: sessionmaker[Session]) -> None:
    _import(factory, [_rule("a"), _rule("b")])
    first = _rules(factory)
    with transaction(factory) as session:  # a run in flight holds rule a
        rule = session.scalars(select(Rule).where(Rule.name == "a")).one()
        rule.claimed_until, rule.claim_token = utcnow() + timedelta(minutes=1), TOKEN
    again = _import(factory, [_rule("a"), _rule("b", stability_target=0.9)])
    assert again == ImportCounts(0, 1, 1)
    now = _rules(factory)
    assert (now["a"].updated_at, now["a"].claim_token) == (first["a"].updated_at, TOKEN)
    assert now["b"].updated_at > first["b"].updated_at
    assert now["b"].stability_target == 0.9
    assert now["b"].next_due_at == first["b"].next_due_at, "the schedule did not change"


def test_a_new_schedule_starts_afresh_and_drops_the_claim(factory: sessionmaker[Session]) -> None:
    _import(factory, [_rule("a")])
    with transaction(factory) as session:
        rule = session.scalars(select(Rule)).one()
        rule.claimed_until, rule.claim_token = utcnow() + timedelta(minutes=1), TOKEN
    assert _import(factory, [_rule("a", interval_s=300)]) == ImportCounts(0, 1, 0)
    rule = _rules(factory)["a"]
    assert (rule.interval_s, rule.claimed_until, rule.claim_token) == (300, None, None)
    assert rule.next_due_at == first_due(validate_rule(_rule("a", interval_s=300)).schedule,
                                         rule.id, rule.updated_at)  # fmt: skip


def test_an_item_that_leaves_fields_out_keeps_their_stored_values(
    factory: sessionmaker[Session],
) -> None:
    _import(factory, [_rule("a", tags=["shop"], alert={"emails": ["ops@example.com"]})])
    assert _import(factory, [{"name": "a", "cron": "*/5 * * * *"}]) == ImportCounts(0, 1, 0)
    with factory() as session:
        [exported] = export_rules(session)
    assert exported["cron"] == "*/5 * * * *" and exported["interval_s"] is None
    assert exported["tags"] == ["shop"]
    assert exported["alert"]["emails"] == ["ops@example.com"]
    assert exported["target"]["url"] == "http://127.0.0.1:9/a"


def test_it_replaces_a_rules_tags(factory: sessionmaker[Session]) -> None:
    _import(factory, [_rule("a", tags=["shop", "eu"]), _rule("b", tags=["shop"])])
    _import(factory, [_rule("a", tags=["us"]), _rule("b", tags=["shop"])])
    with factory() as session:
        tags = {r["name"]: r["tags"] for r in export_rules(session)}
    assert tags == {"a": ["us"], "b": ["shop"]}


def test_it_names_every_problem_with_its_item_and_stores_nothing(
    factory: sessionmaker[Session],
) -> None:
    _import(factory, [_rule("kept")])
    items = [
        _rule("new one"),
        _rule("bad condition", conditions=["[STATUS] = 200"]),
        {"name": "kept", "interval_s": 0},
        "not a rule",
        _rule("new one", tags=["twice"]),
        _rule("bad tag", tags=["no spaces allowed"]),
    ]
    with pytest.raises(RuleInvalid) as raised:
        _import(factory, items)
    where = {(e.field, e.position) for e in raised.value.errors}
    assert where == {
        ("rules[1].conditions[0]", 9),
        ("rules[2].interval_s", None),
        ("rules[3].(rule)", None),
        ("rules[4].name", None),
        ("rules[5].tags[0]", None),
    }, raised.value.errors
    twice = next(e for e in raised.value.errors if e.field == "rules[4].name")
    assert "rules[0]" in twice.message and "'new one'" in twice.message
    rules = _rules(factory)
    assert list(rules) == ["kept"] and rules["kept"].interval_s == 60


def test_a_rule_the_import_disables_resolves_its_open_incident(
    factory: sessionmaker[Session],
) -> None:
    alert = {"emails": ["ops@example.com"], "failure_threshold": 1}
    down = _rule("down", alert=alert)  # nothing listens on the discard port
    _import(factory, [down])
    rule_id = _rules(factory)["down"].id
    alerting = Alerting(DEFAULTS, "http://rw.example")
    verify_one(factory, Job(rule_id, str(uuid.uuid4())), ProbeContext(datasources={}), alerting)
    _import(factory, [{**down, "enabled": False}], alerts=DEFAULTS, base_url="http://rw.example")
    with factory() as session:
        subjects = sorted(session.scalars(select(Notification.subject)))
        incident = session.scalars(select(Incident)).one()
    assert subjects == ["[FIRING] down", "[RESOLVED] down"]
    assert incident.resolved_at is not None

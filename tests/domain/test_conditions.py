"""Conditions: Gatus syntax parsed on save, judged against observations, failing with reasons."""

from __future__ import annotations

import json
import pickle
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rulewatch.domain.conditions import (
    ANY_KIND,
    Condition,
    ConditionOutcome,
    ConditionSyntaxError,
    Vocabulary,
    evaluate,
    evaluate_all,
    judge,
    parse_condition,
)
from rulewatch.domain.observation import Observation

HEALTH = {"status": "UP", "data": {"items": [{"id": 7}, {"id": 8}, {"id": 9}], "name": "orders"}}
DAY_MS = 86_400_000


def http(body: Any = HEALTH, **fields: Any) -> Observation:
    """A connected http observation; a non-string body is sent as JSON."""
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    defaults: dict[str, Any] = {
        "status": 200,
        "response_time_ms": 120.0,
        "headers": {"Content-Type": "application/json"},
        "ip": "10.0.0.5",
        "certificate_expiration_ms": 30.0 * DAY_MS,
    }
    return Observation(connected=True, body=text, **(defaults | fields))


def sql(value: Any = 42, rows: int = 1, **fields: Any) -> Observation:
    row = fields.pop("row", {"total": value} if rows else None)
    return Observation(
        connected=True, response_time_ms=8.0, value=value, rows=rows, row=row, **fields
    )


PING = Vocabulary("ping", frozenset({"CONNECTED", "RESPONSE_TIME"}), "[CONNECTED] == true")
UNREACHABLE = Observation(connected=False, failure="connection refused", response_time_ms=3.0)


def check(text: str, observation: Observation) -> ConditionOutcome:
    return evaluate(parse_condition(text), observation)


def syntax_error(text: str, vocabulary: Vocabulary = ANY_KIND) -> ConditionSyntaxError:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text, vocabulary)
    return caught.value


# The outcome: resolved text, ok, reason


def test_it_passes_when_the_status_matches() -> None:
    assert check("[STATUS] == 200", http()) == ConditionOutcome(
        "[STATUS] == 200", "[STATUS] (200) == 200", True
    )


def test_it_fails_when_status_differs() -> None:
    outcome = check("[STATUS] == 200", http(status=500))
    assert (outcome.ok, outcome.resolved, outcome.reason) == (False, "[STATUS] (500) == 200", None)


def test_it_keeps_the_condition_text_as_written() -> None:
    assert check("  [STATUS]   ==  200 ", http()).condition == "  [STATUS]   ==  200 "


def test_it_shows_a_string_value_gatus_style() -> None:
    outcome = check("[BODY].status == UP", http({"status": "DOWN"}))
    assert (outcome.ok, outcome.resolved) == (False, "[BODY].status (DOWN) == UP")


def test_it_shows_both_sides_when_both_are_placeholders() -> None:
    outcome = check("[VALUE] >= [PREVIOUS_VALUE]", sql(10, previous_value=8))
    assert (outcome.ok, outcome.resolved) == (True, "[VALUE] (10) >= [PREVIOUS_VALUE] (8)")


def test_it_truncates_long_values_for_display_only() -> None:
    outcome = check("[BODY].name == pat(*y)", http({"name": "x" * 500 + "y"}))
    assert outcome.ok
    assert len(outcome.resolved) < 120
    assert outcome.resolved.endswith("...(501 chars)) == pat(*y)")


def test_it_shows_line_breaks_of_a_value_escaped_on_one_line() -> None:
    outcome = check("[BODY] == pat(*)", http("line one\nline two"))
    assert outcome.resolved == "[BODY] (line one\\nline two) == pat(*)"


# http placeholders


def test_it_reads_the_response_time_in_milliseconds() -> None:
    assert check("[RESPONSE_TIME] < 500", http(response_time_ms=499.9)).ok
    assert not check("[RESPONSE_TIME] < 500", http(response_time_ms=500.0)).ok


def test_it_reads_a_nested_body_path() -> None:
    outcome = check("[BODY].data.items[0].id == 7", http())
    assert (outcome.ok, outcome.resolved) == (True, "[BODY].data.items[0].id (7) == 7")


def test_it_reads_an_index_at_the_top_of_a_json_array() -> None:
    assert check("[BODY][1].name == b", http([{"name": "a"}, {"name": "b"}])).ok


def test_it_reads_the_whole_body_as_text() -> None:
    assert check("[BODY] == pong", http("pong")).ok


def test_it_reads_a_header_whatever_the_case_of_its_name() -> None:
    outcome = check("[HEADERS].content-type == application/json", http())
    assert (outcome.ok, outcome.resolved) == (
        True,
        "[HEADERS].content-type (application/json) == application/json",
    )


def test_it_compares_a_numeric_header_as_a_number() -> None:
    assert check("[HEADERS].Content-Length > 99", http(headers={"Content-Length": "100"})).ok


def test_it_reads_connected() -> None:
    assert check("[CONNECTED] == true", http()).ok
    assert check("[CONNECTED] == false", UNREACHABLE).ok


def test_it_reads_the_ip() -> None:
    assert check("[IP] == 10.0.0.5", http()).ok
    assert check("[IP] == pat(10.0.*)", http()).ok


def test_it_reads_the_certificate_expiration_in_milliseconds() -> None:
    outcome = check("[CERTIFICATE_EXPIRATION] > 48h", http(certificate_expiration_ms=3.0 * DAY_MS))
    assert (outcome.ok, outcome.resolved) == (True, "[CERTIFICATE_EXPIRATION] (259200000.0) > 48h")
    assert not check("[CERTIFICATE_EXPIRATION] > 7d", http(certificate_expiration_ms=DAY_MS)).ok


def test_it_accepts_placeholder_names_in_any_case() -> None:
    assert check("[status] == 200", http()).ok


# sql placeholders


def test_it_reads_the_first_value() -> None:
    assert check("[VALUE] == 42", sql(42)).ok


def test_it_reads_the_row_count() -> None:
    assert check("[ROWS] >= 3", sql(1, rows=3)).ok


def test_it_reads_a_named_column_of_the_first_row() -> None:
    outcome = check("[ROW].total == 12", sql(row={"total": 12, "day": "2024-05-15"}))
    assert (outcome.ok, outcome.resolved) == (True, "[ROW].total (12) == 12")


def test_it_finds_a_column_whatever_the_case_the_database_folded_it_to() -> None:
    assert check("[ROW].Total == 12", sql(row={"total": 12})).ok


def test_it_reads_a_path_inside_a_json_column() -> None:
    assert check("[ROW].payload.tags[1] == b", sql(row={"payload": {"tags": ["a", "b"]}})).ok


def test_it_compares_with_the_previous_value() -> None:
    assert check("[PREVIOUS_VALUE] == 40", sql(42, previous_value=40)).ok


def test_it_reads_a_previous_value_stored_as_text_as_a_number() -> None:
    assert check("[VALUE] > [PREVIOUS_VALUE]", sql(Decimal("10.5"), previous_value="10.25")).ok


def test_it_computes_the_change_against_the_recent_average_in_percent() -> None:
    outcome = check("[CHANGE_PERCENT] <= 10", sql(110, recent_average=100.0))
    assert (outcome.ok, outcome.resolved) == (True, "[CHANGE_PERCENT] (10) <= 10")


def test_it_gives_a_signed_change_percent() -> None:
    assert check("[CHANGE_PERCENT] == -25", sql(75, recent_average=100.0)).ok
    assert check("[CHANGE_PERCENT] == 50", sql(-50, recent_average=-100.0)).ok


def test_it_keeps_the_change_percent_exact_for_huge_values() -> None:
    observation = sql(10**30 + 10**20, recent_average=1e30)
    assert check("[CHANGE_PERCENT] == 0.00000001", observation).ok


# tcp placeholders


def test_it_judges_a_tcp_observation() -> None:
    tcp = Observation(connected=True, response_time_ms=4.2)
    outcomes = evaluate_all(
        [parse_condition(c) for c in ("[CONNECTED] == true", "[RESPONSE_TIME] < 1s")], tcp
    )
    assert [o.ok for o in outcomes] == [True, True]


# Operators


@pytest.mark.parametrize(
    ("operator", "expected"),
    [("==", [False, True, False]), ("!=", [True, False, True]), ("<", [True, False, False]),
     ("<=", [True, True, False]), (">", [False, False, True]), (">=", [False, True, True])],
)  # fmt: skip
def test_it_applies_each_operator(operator: str, expected: list[bool]) -> None:
    results = [check(f"[STATUS] {operator} 200", http(status=s)).ok for s in (199, 200, 201)]
    assert results == expected


def test_it_accepts_a_value_on_the_left() -> None:
    assert check("300 > [STATUS]", http()).ok


# Numbers, durations, booleans, strings


def test_it_never_truncates_decimals() -> None:
    outcome = check("[VALUE] > 1000", sql(Decimal("1000.5")))
    assert (outcome.ok, outcome.resolved) == (True, "[VALUE] (1000.5) > 1000")
    assert check("[BODY].x > 1000", http({"x": 1000.5})).ok
    assert not check("[BODY].x < 1000.4", http('{"x": 1000.40000000000000000001}')).ok


def test_it_compares_huge_integers_exactly() -> None:
    huge = 10**40
    assert check(f"[VALUE] > {huge}", sql(huge + 1)).ok
    assert not check(f"[VALUE] == {huge}", sql(huge + 1)).ok
    assert check(f"[BODY].n == {huge + 1}", http(f'{{"n": {huge + 1}}}')).ok


def test_it_compares_numbers_by_value_not_spelling() -> None:
    assert check("[BODY].x == 1", http({"x": 1.0})).ok
    assert check("[BODY].x == 1e3", http({"x": 1000})).ok
    assert check("[BODY].x == 42", http({"x": "42"})).ok


def test_it_compares_negative_numbers() -> None:
    assert check("[VALUE] > -10", sql(-9.5)).ok


@pytest.mark.parametrize(
    ("duration", "ms"),
    [("500ms", 500), ("1s", 1_000), ("5m", 300_000), ("48h", 172_800_000), ("7d", 604_800_000),
     ("1.5s", 1_500), ("1h30m", 5_400_000)],
)  # fmt: skip
def test_it_compares_durations_as_milliseconds(duration: str, ms: int) -> None:
    assert check(f"[RESPONSE_TIME] == {duration}", http(response_time_ms=float(ms))).ok
    assert check(f"[RESPONSE_TIME] < {duration}", http(response_time_ms=ms - 0.5)).ok


def test_it_reads_a_duration_in_the_body() -> None:
    assert check("[BODY].uptime > 1h", http({"uptime": "48h"})).ok


def test_it_compares_json_booleans() -> None:
    assert check("[BODY].enabled == true", http({"enabled": True})).ok
    assert not check("[BODY].enabled == true", http({"enabled": False})).ok


def test_it_compares_strings_as_strings_when_a_side_is_not_numeric() -> None:
    assert check("[BODY].version == 1.2.3", http({"version": "1.2.3"})).ok
    assert not check("[BODY].id == 7", http({"id": "7a"})).ok


def test_it_compares_strings_case_sensitively() -> None:
    assert not check("[BODY].status == up", http()).ok


def test_it_compares_text_with_spaces() -> None:
    assert check("[BODY].msg == all systems go", http({"msg": "all systems go"})).ok


def test_it_matches_a_json_null_with_null() -> None:
    assert check("[BODY].error == null", http({"error": None})).ok
    assert check("[VALUE] != null", sql(5)).ok


# Functions


def test_it_measures_the_length_of_an_array() -> None:
    outcome = check("len([BODY].data.items) > 0", http())
    assert (outcome.ok, outcome.resolved) == (True, "len([BODY].data.items) (3) > 0")


def test_it_measures_the_length_of_a_string_and_an_object() -> None:
    assert check("len([BODY].data.name) == 6", http()).ok
    assert check("len([BODY].data) == 2", http()).ok


def test_it_measures_the_whole_body_as_json_or_else_as_text() -> None:
    assert check("len([BODY]) == 3", http([1, 2, 3])).ok
    assert check("len([BODY]) == 4", http("pong")).ok


def test_it_fails_len_of_a_number_with_a_reason() -> None:
    outcome = check("len([BODY].data.items[0].id) > 0", http())
    assert not outcome.ok
    assert (
        outcome.reason == "len() needs text, a list or an object, but [BODY].data.items[0].id is 7"
    )


def test_it_tells_whether_a_path_exists() -> None:
    assert check("has([BODY].data.name) == true", http()).ok
    outcome = check("has([BODY].errors) == true", http())
    assert (outcome.ok, outcome.resolved) == (False, "has([BODY].errors) (false) == true")
    assert check("has([BODY].errors) == false", http()).ok


def test_it_says_has_is_false_when_the_body_is_not_json() -> None:
    assert check("has([BODY].x) == false", http("<html>")).ok


def test_it_says_whether_there_is_any_body() -> None:
    assert check("has([BODY]) == false", http("")).ok
    assert check("has([BODY]) == true", http("pong")).ok


def test_it_says_whether_there_is_a_previous_value() -> None:
    assert check("has([PREVIOUS_VALUE]) == false", sql(1)).ok


def test_it_matches_a_glob_pattern() -> None:
    assert check("[BODY].status == pat(*UP*)", http({"status": "ALL_UP_NOW"})).ok
    assert check("[BODY].status != pat(D?WN)", http()).ok
    assert check("[STATUS] == pat(2*)", http(status=204)).ok
    assert not check("[BODY].status == pat(*up*)", http()).ok


def test_it_matches_any_of_several_values() -> None:
    assert check("[STATUS] == any(200, 204)", http(status=204)).ok
    assert not check("[STATUS] == any(200, 204)", http(status=500)).ok
    assert check("[STATUS] != any(500, 503)", http()).ok
    assert check("[BODY].status == any(UP, DEGRADED)", http()).ok
    assert check("[RESPONSE_TIME] == any(1s, 2s)", http(response_time_ms=2000.0)).ok


def test_it_allows_operator_characters_inside_a_function() -> None:
    assert check("[BODY].expr == any(a == b, c)", http({"expr": "a == b"})).ok


# Values that cannot be read fail with a reason, never become 0


def test_it_fails_a_missing_path_with_its_reason() -> None:
    outcome = check("[BODY].data.x == 1", http())
    assert outcome == ConditionOutcome(
        "[BODY].data.x == 1", "[BODY].data.x (missing) == 1", False, "path data.x not found in body"
    )


def test_it_fails_an_index_past_the_end_of_an_array() -> None:
    assert check("[BODY].data.items[3].id == 0", http()).reason == (
        "path data.items[3].id not found in body"
    )


def test_it_fails_not_equal_on_a_missing_path_too() -> None:
    assert not check("[BODY].error != fatal", http()).ok


def test_it_fails_a_missing_length_rather_than_counting_zero() -> None:
    outcome = check("len([BODY].nope) == 0", http())
    assert (outcome.ok, outcome.resolved) == (False, "len([BODY].nope) (missing) == 0")


def test_it_fails_when_the_body_is_not_json() -> None:
    outcome = check("[BODY].status == UP", http("<html>oops</html>"))
    assert (outcome.ok, outcome.resolved) == (False, "[BODY].status (invalid) == UP")
    assert outcome.reason is not None and outcome.reason.startswith("body is not valid JSON")


def test_it_fails_when_the_body_is_empty() -> None:
    assert check("[BODY].status == UP", http("")).reason == "body is empty, not JSON"


def test_it_fails_the_status_of_an_unreachable_target_with_the_failure() -> None:
    outcome = check("[STATUS] == 200", UNREACHABLE)
    assert outcome == ConditionOutcome(
        "[STATUS] == 200",
        "[STATUS] (n/a) == 200",
        False,
        "[STATUS] unavailable: connection refused",
    )


def test_it_fails_the_body_of_an_unreachable_target() -> None:
    assert not check("[BODY].status == UP", UNREACHABLE).ok
    assert not check("[IP] == pat(*)", UNREACHABLE).ok


def test_it_fails_a_missing_header() -> None:
    outcome = check("[HEADERS].X-Version == 2", http())
    assert (outcome.ok, outcome.reason) == (False, "header X-Version not in the response")


def test_it_fails_without_a_certificate() -> None:
    outcome = check("[CERTIFICATE_EXPIRATION] > 7d", http(certificate_expiration_ms=None))
    assert not outcome.ok
    assert (
        outcome.reason
        == "[CERTIFICATE_EXPIRATION] unavailable: the probe measured no TLS certificate"
    )


def test_it_fails_a_null_value_compared_numerically() -> None:
    outcome = check("[VALUE] > 0", sql(None))
    assert (outcome.ok, outcome.resolved) == (False, "[VALUE] (null) > 0")
    assert outcome.reason == "[VALUE] is null, which '>' cannot compare"


def test_it_fails_the_value_when_the_query_returned_no_rows() -> None:
    outcome = check("[VALUE] == 0", sql(None, rows=0))
    assert (outcome.ok, outcome.reason) == (
        False,
        "[VALUE] unavailable: the query returned no rows",
    )
    assert not check("[ROW].total == 0", sql(None, rows=0)).ok
    assert check("[ROWS] == 0", sql(None, rows=0)).ok


def test_it_fails_a_missing_column_naming_the_columns() -> None:
    outcome = check("[ROW].count > 0", sql(row={"total": 3, "day": "mon"}))
    assert outcome.reason == "column count not in the first row (columns: total, day)"


def test_it_does_not_judge_a_condition_on_the_previous_value_before_there_is_one() -> None:
    outcome = check("[VALUE] >= [PREVIOUS_VALUE]", sql(5))
    assert (outcome.ok, outcome.resolved) == (True, "[VALUE] (5) >= [PREVIOUS_VALUE] (n/a)")
    assert outcome.reason == "not judged: [PREVIOUS_VALUE] unavailable: no previous value yet"


def test_it_does_not_judge_change_percent_before_there_is_a_recent_average() -> None:
    outcome = check("[CHANGE_PERCENT] < 10", sql(5))
    assert outcome.ok
    assert outcome.reason == "not judged: [CHANGE_PERCENT] unavailable: no recent average yet"


def test_it_still_fails_a_history_condition_whose_value_is_missing() -> None:
    outcome = check("[VALUE] >= [PREVIOUS_VALUE]", sql(None, rows=0))
    assert not outcome.ok, "no rows is the target's answer, not a missing history"


def test_it_fails_change_percent_against_a_zero_average() -> None:
    assert not check("[CHANGE_PERCENT] < 10", sql(5, recent_average=0.0)).ok


def test_it_fails_change_percent_of_a_value_that_is_not_a_number() -> None:
    outcome = check("[CHANGE_PERCENT] < 10", sql("n/a", recent_average=3.0))
    assert outcome.reason == "[CHANGE_PERCENT] needs a numeric [VALUE], not n/a"


def test_it_fails_ordering_on_text_with_a_reason() -> None:
    outcome = check("[BODY].status > 3", http())
    assert (outcome.ok, outcome.reason) == (
        False,
        "'>' compares numbers, but [BODY].status is 'UP'",
    )


def test_it_joins_the_reasons_of_two_unreadable_sides() -> None:
    outcome = check("[BODY].a == [BODY].b", http())
    assert outcome.reason == "path a not found in body; path b not found in body"


# evaluate_all and judge


def test_it_evaluates_every_condition_in_order() -> None:
    conditions = [parse_condition(c) for c in ("[STATUS] == 200", "[BODY].status == DOWN")]
    assert [o.ok for o in evaluate_all(conditions, http())] == [True, False]


def test_it_judges_pass_when_every_condition_holds() -> None:
    observation = http()
    assert judge(evaluate_all([parse_condition("[STATUS] == 200")], observation), observation) == (
        "pass"
    )


def test_it_judges_fail_when_a_condition_does_not_hold() -> None:
    observation = http(status=500)
    assert judge([check("[STATUS] == 200", observation)], observation) == "fail"


def test_it_judges_fail_when_the_target_could_not_be_reached() -> None:
    assert judge([check("[RESPONSE_TIME] < 1s", UNREACHABLE)], UNREACHABLE) == "fail"


def test_it_lets_a_connected_condition_assert_that_a_port_is_shut() -> None:
    assert judge([check("[CONNECTED] == false", UNREACHABLE)], UNREACHABLE) == "pass"
    assert judge([check("[CONNECTED] == true", UNREACHABLE)], UNREACHABLE) == "fail"


def test_it_judges_error_when_rulewatch_could_not_evaluate() -> None:
    faulted = Observation(connected=False, fault="unknown data source 'dw'")
    assert judge([check("[ROWS] > 0", faulted)], faulted) == "error"


# Parsing


def test_it_parses_into_a_hashable_value() -> None:
    condition = parse_condition("[BODY].data.items[0].id == 7")
    assert isinstance(condition, Condition)
    assert condition == parse_condition("[BODY].data.items[0].id == 7")
    assert hash(condition) == hash(parse_condition("[BODY].data.items[0].id == 7"))
    assert condition.text == "[BODY].data.items[0].id == 7"


def test_it_lists_the_placeholders_a_condition_reads() -> None:
    assert parse_condition("len([BODY].x) > [STATUS]").placeholders == {"BODY", "STATUS"}
    assert parse_condition("[CHANGE_PERCENT] < 10").placeholders == {"CHANGE_PERCENT"}


def test_it_accepts_the_placeholders_of_its_vocabulary() -> None:
    assert parse_condition("[RESPONSE_TIME] < 500ms", PING).placeholders == {"RESPONSE_TIME"}


def test_it_accepts_every_known_placeholder_without_a_vocabulary() -> None:
    assert parse_condition("[VALUE] > [STATUS]").placeholders == {"VALUE", "STATUS"}


# Syntax errors: what, where, and what to write


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "empty condition"),
        ("   ", 0, "empty condition"),
        ("[STATUS]==200", 8, "missing space around operator '==' (write '[STATUS] == 200')"),
        ("[STATUS] ==200", 9, "missing space around operator '=='"),
        ("len([BODY].items)>0", 17, "missing space around operator '>'"),
        ("[STATUS] = 200", 9, "unknown operator '=' (use ==)"),
        ("[STATUS] => 200", 9, "unknown operator '=>' (use >=)"),
        ("[STATUS] <> 200", 9, "unknown operator '<>' (use !=)"),
        ("[STATUS] 200", 8, "missing operator"),
        ("[STATUS] ==", 11, "missing value after '=='"),
        ("== 200", 0, "missing value before '=='"),
        ("[STATUS] == 200 == 300", 16, "second operator '=='"),
        ("[STATUSES] == 200", 0, "unknown placeholder [STATUSES]"),
        ("[STATUS] == [NOPE]", 12, "unknown placeholder [NOPE]"),
        ("[BODY.status == UP", 0, "unclosed '['"),
        ("[BODY].items[0 == 1", 12, "unclosed '['"),
        ("len([BODY].items > 0", 3, "unclosed '('"),
        ("[STATUS] == any(200, 204", 15, "unclosed '('"),
        ("[STATUS] == 200)", 15, "unexpected ')'"),
        ("[BODY].x == pat(a]", 17, "']' does not close '('"),
        ("size([BODY].items) > 0", 0, "unknown function 'size'"),
        ("[BODY].x == glob(*UP*)", 12, "unknown function 'glob'"),
        ("[RESPONSE_TIME] < 5sec", 18, "bad duration '5sec'"),
        ("[RESPONSE_TIME] < 2w", 18, "bad duration '2w'"),
        ("[CERTIFICATE_EXPIRATION] == 1 day", 28, "bad duration '1 day'"),
        ("[STATUS] < abc", 11, "'abc' is not a number or a duration"),
        ("[STATUS] >= true", 12, "'true' is not a number or a duration"),
        ("STATUS == 200", 0, "no placeholder to check"),
        ("[STATUS].code == 200", 8, "[STATUS] takes no path"),
        ("[HEADERS] == x", 9, "[HEADERS] needs one header name"),
        ("[HEADERS].a.b == x", 9, "[HEADERS] needs one header name"),
        ("[ROW] == 1", 5, "[ROW] needs a column name"),
        ("[ROW][0] == 1", 5, "[ROW] needs a column name"),
        ("[BODY]..x == 1", 7, "empty name after '.'"),
        ("[BODY].items[first] == 1", 13, "an array index is a whole number"),
        ("[BODY].a b == 1", 8, "unexpected ' ' in path"),
        ("[BODY]x == 1", 6, "unexpected 'x' in path"),
        ("len(x) == 1", 4, "len() takes a placeholder"),
        ("has() == true", 4, "has() takes a placeholder"),
        ("len([BODY]) 2 == 1", 11, "unexpected text after len(...)"),
        ("pat(*UP*) == [BODY].status", 0, "pat() goes on the right side"),
        ("any(UP) == [BODY].status", 0, "any() goes on the right side"),
        ("[BODY].n > pat(1*)", 11, "pat() works only with == or !="),
        ("[STATUS] < any(200, 300)", 11, "any() works only with == or !="),
        ("[BODY].status == pat()", 21, "pat() needs a pattern"),
        ("[STATUS] == any()", 16, "any() needs at least one value"),
        ("[STATUS] == any(200,,204)", 20, "empty value in any()"),
        ("[STATUS] == any(200, [IP])", 21, "any() takes plain values"),
        ("[CONNECTED] > 0", 0, "[CONNECTED] is true or false"),
        ("has([BODY].x) >= 1", 0, "has([BODY].x) is true or false"),
    ],
)
def test_it_rejects_a_malformed_condition_at_the_right_position(
    text: str, position: int, message: str
) -> None:
    error = syntax_error(text)
    assert (error.position, error.condition) == (position, text)
    assert error.message.startswith(message), error.message


def test_it_rejects_a_placeholder_its_vocabulary_lacks_where_it_is_written() -> None:
    error = syntax_error("[RESPONSE_TIME] < [CERTIFICATE_EXPIRATION]", PING)
    assert error.position == 18
    assert "[CERTIFICATE_EXPIRATION] is not available for ping rules (use one of " in error.message


def test_it_suggests_the_example_of_its_vocabulary_for_an_empty_condition() -> None:
    assert "e.g. [CONNECTED] == true" in syntax_error(" ", PING).message


def test_it_formats_the_error_with_message_position_and_condition() -> None:
    error = syntax_error("[STATUS] = 200")
    assert str(error) == "unknown operator '=' (use ==) at position 9 in condition '[STATUS] = 200'"
    assert isinstance(error, ValueError)


def test_it_keeps_a_syntax_error_intact_through_pickling() -> None:
    error = pickle.loads(pickle.dumps(syntax_error("[STATUS] = 200")))
    assert (error.position, error.message) == (9, "unknown operator '=' (use ==)")


def test_it_lists_the_placeholders_of_its_vocabulary_when_one_is_unknown() -> None:
    message = syntax_error("[STAT] == 200", PING).message
    assert "use one of [CONNECTED], [RESPONSE_TIME]" in message and "[STATUS]" not in message


# Properties

numbers = st.decimals(allow_nan=False, allow_infinity=False) | st.integers().map(Decimal)
operators = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
DECIMAL_ORDER = {
    "==": Decimal.__eq__, "!=": Decimal.__ne__, "<": Decimal.__lt__,
    "<=": Decimal.__le__, ">": Decimal.__gt__, ">=": Decimal.__ge__,
}  # fmt: skip


@given(value=numbers, literal=numbers, operator=operators)
def test_it_compares_numbers_exactly_as_decimal_does(
    value: Decimal, literal: Decimal, operator: str
) -> None:
    expected = DECIMAL_ORDER[operator](value, literal)
    condition = parse_condition(f"[VALUE] {operator} {literal}")
    assert evaluate(condition, sql(value)).ok is expected
    body = http(f'{{"n": {value}}}')
    assert evaluate(parse_condition(f"[BODY].n {operator} {literal}"), body).ok is expected


condition_like = st.text(alphabet="[]().,=!<> *-BODYSTATUSVALUEROWlenhaspatany0123456789msd")


@given(text=condition_like | st.text(max_size=40))
def test_it_either_parses_or_raises_a_syntax_error_with_a_position_inside_the_text(
    text: str,
) -> None:
    try:
        parse_condition(text)
    except ConditionSyntaxError as error:
        assert 0 <= error.position <= len(text)


@given(text=condition_like)
def test_it_evaluates_whatever_it_parsed_without_raising(text: str) -> None:
    try:
        condition = parse_condition(text)
    except ConditionSyntaxError:
        return
    for observation in (http(), http("[1, 2]"), sql(None), UNREACHABLE):
        assert isinstance(evaluate(condition, observation).ok, bool)


def test_it_fails_change_percent_out_of_decimal_range() -> None:
    outcome = check("[CHANGE_PERCENT] > 0", sql(Decimal("9e999999"), recent_average=1e-300))
    assert not outcome.ok
    assert outcome.reason is not None and "out of range" in outcome.reason

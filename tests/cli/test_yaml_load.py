"""The fast YAML reader gives what PyYAML's safe loader gives, value for value and error for
error, on any document: plain ones it builds itself, the rest it hands to the loader."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rulewatch.yaml_load import SafeLoader, load_yaml

TRICKY = [
    "",
    "# only a comment\n",
    "rules: []",
    "- yes\n- no\n- on\n- off\n- y\n- ~\n- null\n- Null\n- ''\n-\n- true\n- False\n",
    "- 0x1F\n- 0o17\n- 017\n- 1_000\n- +12\n- -0\n- 0b101\n- 190:20:30\n",
    "- .inf\n- -.Inf\n- 1e3\n- 1.5e-3\n- 6.8523015e+5\n- .5\n- 1_0.5\n",
    "- 2001-12-14\n- 2001-12-14t21:59:43.10-05:00\n- 2001-12-14 21:59:43.10\n",
    "- '1'\n- \"2\"\n- ! 3\n- !!str 4\n- !!int '5'\n- !!float 6\n- !!binary aGk=\n",
    "a: &x {b: 1}\nc: *x\n",
    "base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\n",
    "'<<': literal key\n",
    "? [1, 2]\n: complex key\n",
    "a: =\n",
    "a: 1\na: 2\n",
    "--- 1\n--- 2\n",
    "--- 1\n...\n",
    "a: [1\n",
    "- name: [orders API\n  kind: http\n",
    "a: !custom 1\n",
    "text: |\n  line one\n  line two\n",
    "folded: >\n  one\n  two\n",
    "{a: 1, b: [x, {c: d}], 3: 4, null: n, true: t, 1.5: f}",
    "- - - deep\n    - er\n  - x\n",
    "\ufeffa: bom\n",
]


def _outcome(load: Any, text: str) -> Any:
    try:
        return ("value", load(text))
    except yaml.YAMLError as exc:
        return ("error", type(exc).__name__, str(exc))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _loader(text: str) -> Any:
    return yaml.load(text, Loader=SafeLoader)


@pytest.mark.parametrize("text", TRICKY)
def test_it_reads_each_tricky_document_as_the_safe_loader_does(text: str) -> None:
    assert _same(_outcome(load_yaml, text), _outcome(_loader, text)), text


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=20), st.dates(), st.datetimes(),
    st.sampled_from(["yes", "No", "~", "0x10", "1e3", ".nan", "<<", "=", "- x", "a: b", "#"]),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.one_of(st.text(max_size=10), st.integers(), st.booleans()), inner, max_size=5
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=documents, flow=st.sampled_from([None, True, False]), width=st.integers(10, 200))
def test_it_reads_any_dumped_document_as_the_safe_loader_does(
    value: Any, flow: bool | None, width: int
) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow, width=width, allow_unicode=True)
    assert _same(_outcome(load_yaml, text), _outcome(_loader, text)), text


def test_it_builds_plain_documents_itself_and_hands_the_rest_to_the_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed: list[str] = []
    monkeypatch.setattr(yaml, "load", lambda text, Loader: handed.append(text))
    plain = "rules:\n- {name: a, interval_s: 60, enabled: yes, tags: [x]}\n"
    assert load_yaml(plain) == {"rules": [{"name": "a", "interval_s": 60, "enabled": True,
                                           "tags": ["x"]}]}  # fmt: skip
    assert handed == []
    load_yaml("a: &x 1\nb: *x\n")
    assert handed == ["a: &x 1\nb: *x\n"]

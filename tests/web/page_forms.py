"""Reading pages in tests: a form's CSRF token, and the text of an element by id."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from flask.testing import FlaskClient

_VOID = frozenset(
    {"area", "base", "br", "col", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the first form on the page at ``path`` (the session keeps it)."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    found = _TOKEN.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


class _ById(HTMLParser):
    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted, self.depth, self.parts = wanted, 0, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("id") == self.wanted:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def text_of(html: str, element_id: str) -> str | None:
    """The text inside the element with ``element_id``, spaces collapsed; None if absent."""
    if f'id="{element_id}"' not in html:
        return None
    parser = _ById(element_id)
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def row_ids(html: str) -> list[int]:
    """The rule ids of the table rows, in page order."""
    return [int(i) for i in re.findall(r'<tr data-rule-id="(\d+)"', html)]

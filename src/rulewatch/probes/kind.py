"""A kind of check in one place: its probe, its target's schema, what its conditions read.

Each probe module defines its ``KIND``; ``probes.KINDS`` lists them, and validation, the API
document, the runner and the condition parser all look a kind up there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from rulewatch.domain.conditions import Vocabulary
from rulewatch.probes.context import Probe

Timeout = Annotated[float, Field(gt=0, le=120)]


class Target(BaseModel):
    """The base of every kind's target schema (which must have a ``timeout_s``): an unknown
    field is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Kind:
    """One kind of check: how it is probed, what its target holds, what conditions read."""

    name: str
    probe: Probe
    target: type[Target]
    placeholders: frozenset[str]
    example: str  # a condition suggested when one is written wrong
    # its probe blocks a thread (a database driver): the runner gives the batch a pool
    blocking: bool = False

    @property
    def default_timeout_s(self) -> float:
        """The timeout of a target that names none: its schema's default."""
        return float(self.target.model_fields["timeout_s"].default)

    @property
    def vocabulary(self) -> Vocabulary:
        """What the condition parser accepts for this kind."""
        return Vocabulary(self.name, self.placeholders, self.example)

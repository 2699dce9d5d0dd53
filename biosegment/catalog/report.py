"""What a refresh of the catalog did, for logs, ``biosegment status`` and tests.

Each table gets a tally of rows added, updated, left unchanged and newly marked missing; problems
are listed as ``{source, where, reason}`` dicts. Reports of the setup reconciler and the folder
scan merge into the one report :func:`~biosegment.catalog.refresh.refresh` returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from biosegment.errors import InputError

__all__ = ["CatalogReport", "OUTCOMES"]

OUTCOMES = ("added", "updated", "unchanged", "missing")


@dataclass(slots=True)
class CatalogReport:
    """Tallies per table and the problems found."""

    changes: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    setup: str | None = None  #: 'valid', 'invalid' or 'absent' once setup.json was read
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  #: what else happened, in words

    def tally(self, table: str, outcome: str, count: int = 1) -> None:
        counts = self.changes.setdefault(table, {name: 0 for name in OUTCOMES})
        counts[outcome] += count

    def add_counts(self, table: str, counts: dict[str, int]) -> None:
        for outcome, count in counts.items():
            self.tally(table, outcome, count)

    def add_problems(self, problems: Iterable[InputError | dict]) -> None:
        for problem in problems:
            entry = problem.as_dict() if isinstance(problem, InputError) else dict(problem)
            if entry not in self.problems:
                self.problems.append(entry)

    def count(self, outcome: str, table: str | None = None) -> int:
        tables = [table] if table else list(self.changes)
        return sum(self.changes.get(t, {}).get(outcome, 0) for t in tables)

    @property
    def changed(self) -> bool:
        """True when any row was added, updated or marked missing."""
        return any(self.count(outcome) for outcome in ("added", "updated", "missing"))

    def merge(self, other: CatalogReport) -> CatalogReport:
        for table, counts in other.changes.items():
            self.add_counts(table, counts)
        self.add_problems(other.problems)
        self.setup = other.setup or self.setup
        self.seconds += other.seconds
        self.notes.extend(other.notes)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": {t: dict(c) for t, c in self.changes.items()},
            "problems": [dict(p) for p in self.problems],
            "setup": self.setup,
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
        }

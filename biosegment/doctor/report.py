"""What ``biosegment doctor`` found and did, one :class:`Finding` per thing it examined.

A finding is ``ok`` (nothing to do), ``repaired`` (it was broken and is now rebuilt, with what
came back listed in ``recovered``), ``problem`` (broken, and not repaired: a check-only run, a
daemon still holding the files, or nothing to rebuild it from) or ``skipped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "DoctorReport", "FINDING_STATES"]

FINDING_STATES = ("ok", "repaired", "problem", "skipped")


@dataclass(slots=True)
class Finding:
    subject: str  #: what was examined: "catalog", "queue", "accounts", ...
    state: str  #: one of FINDING_STATES
    detail: str  #: what was found (and done), in words
    recovered: dict[str, Any] = field(default_factory=dict)
    moved_aside: str | None = None  #: where a damaged file was kept
    problems: list[str] = field(default_factory=list)  #: each thing found wrong, one line each

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "state": self.state,
            "detail": self.detail,
            "recovered": dict(self.recovered),
            "moved_aside": self.moved_aside,
            "problems": list(self.problems),
        }


@dataclass(slots=True)
class DoctorReport:
    data_dir: str
    repair: bool
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when nothing is left broken."""
        return not any(f.state == "problem" for f in self.findings)

    def finding(self, subject: str) -> Finding | None:
        return next((f for f in self.findings if f.subject == subject), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "data_dir": self.data_dir,
            "repair": self.repair,
            "healthy": self.healthy,
            "findings": [f.as_dict() for f in self.findings],
        }

"""Gate results: one Check per rule or verification, with pass / warn / deny and a remedy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TextIO, TypedDict

__all__ = ["Check", "CheckJSON", "Report", "ReportJSON", "PASS", "WARN", "DENY"]

PASS, WARN, DENY = "pass", "warn", "deny"


@dataclass(frozen=True)
class Check:
    """One result: ``id`` names the rule or check, ``where`` is ``Dockerfile:LINE`` or an image."""

    id: str
    status: str
    message: str
    where: str = ""
    remedy: str = ""


class CheckJSON(TypedDict):
    """A :class:`Check` in ``--output json`` and the provenance."""

    id: str
    status: str
    message: str
    where: str
    remedy: str


class ReportJSON(TypedDict):
    """A :class:`Report` as JSON."""

    policy: str
    policyDigest: str
    decision: str
    checks: list[CheckJSON]


@dataclass
class Report:
    """Everything the gate checked, in order."""

    policy: str
    policy_digest: str
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> None:
        """Append a result."""
        self.checks.append(check)

    @property
    def denied(self) -> list[Check]:
        """The checks that deny."""
        return [c for c in self.checks if c.status == DENY]

    @property
    def decision(self) -> str:
        """``allow`` or ``deny``."""
        return "deny" if self.denied else "allow"

    def to_json(self) -> ReportJSON:
        """As JSON for ``--output json`` and provenance."""
        return {
            "policy": self.policy,
            "policyDigest": self.policy_digest,
            "decision": self.decision,
            "checks": [CheckJSON(id=c.id, status=c.status, message=c.message, where=c.where,
                                 remedy=c.remedy) for c in self.checks],
        }

    def write_text(self, out: TextIO) -> None:
        """Human report, one line per check (remedies for warn/deny)."""
        for c in self.checks:
            where = f" {c.where}:" if c.where else ""
            out.write(f"{c.status.upper():5} {c.id}:{where} {c.message}\n")
            if c.status != PASS and c.remedy:
                out.write(f"      remedy: {c.remedy}\n")
        out.write(
            f"policy {self.policy}: {self.decision}"
            f" ({len(self.denied)} denied, {sum(c.status == WARN for c in self.checks)} warnings)\n"
        )

    def write_json(self, out: TextIO) -> None:
        """Machine report."""
        json.dump(self.to_json(), out, indent=2)
        out.write("\n")

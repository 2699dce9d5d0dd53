"""The audit log: who did what, when, from where, in the accounts database.

Every launch, cancel and retry of a job is recorded with the person (or ``local`` for the
desktop user on 127.0.0.1), as are logins, failed logins, token changes and account changes.
Rows are only ever appended.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from biosegment.accounts.database import AccountsConnection, now_iso

__all__ = ["AuditLog", "LOCAL_ACTOR"]

#: The actor recorded for requests on 127.0.0.1, where nobody logs in.
LOCAL_ACTOR = "local"


class AuditLog(AccountsConnection):
    def record(
        self,
        actor: str,
        action: str,
        *,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        remote: str | None = None,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO audit (at, actor, action, target, detail, remote) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    now_iso(),
                    actor,
                    action,
                    target,
                    None
                    if detail is None
                    else json.dumps(dict(detail), sort_keys=True, default=str),
                    remote,
                ),
            )

    def audit_log(
        self, *, limit: int = 100, action: str | None = None, target: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; ``action`` may end in ``*`` to match a prefix (``job.*``)."""
        where, params = [], []
        if action:
            if action.endswith("*"):
                where.append("action LIKE ?")
                params.append(action[:-1].replace("%", "") + "%")
            else:
                where.append("action = ?")
                params.append(action)
        if target:
            where.append("target = ?")
            params.append(target)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(
            f"SELECT * FROM audit {clause} ORDER BY id DESC LIMIT ?", [*params, int(limit)]
        )
        for row in rows:
            row["detail"] = None if row["detail"] is None else json.loads(row["detail"])
        return rows

"""Jobs as catalog rows: what was asked, how far it got, and how it ended (SPEC 6).

The queue (Huey) only carries a job's id; everything a person or another process wants to know
about the job lives in its ``jobs`` row, written by whichever process is running it. Ids are short
random strings that are easy to type in ``biosegment cancel 3f9c2a1b`` (and any unique prefix of
four characters or more finds the job). Every change is one short ``BEGIN IMMEDIATE`` transaction
that reads and writes the row together, so a worker reporting progress, a UI asking to cancel and
a second worker appending metrics never overwrite one another.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Mapping
from typing import Any

from biosegment.catalog.connection import CatalogConnection
from biosegment.catalog.rows import JOB_STATES, decode_row, encode_fields, now_iso
from biosegment.errors import NotFoundError

__all__ = ["JobStore", "TERMINAL_JOB_STATES", "JOB_ID_LENGTH"]

TERMINAL_JOB_STATES = ("succeeded", "failed", "cancelled")
JOB_ID_LENGTH = 8
_SHORTEST_PREFIX = 4


class JobStore(CatalogConnection):
    """The ``jobs`` table: create, find, update, cancel."""

    def create_job(self, kind: str, params: Mapping[str, Any] | None = None) -> dict:
        """Record a new queued job of ``kind`` with ``params``; return its row."""
        if not kind or not isinstance(kind, str):
            raise ValueError("a job needs a kind such as 'segment' or 'train'")
        params_text = json.dumps(dict(params or {}), sort_keys=True, ensure_ascii=False)
        now = now_iso()
        with self._write() as conn:
            while True:
                job_id = secrets.token_hex(JOB_ID_LENGTH // 2)
                try:
                    conn.execute(
                        "INSERT INTO jobs (id, kind, params, state, created_at, updated_at) "
                        "VALUES (?, ?, ?, 'queued', ?, ?)",
                        (job_id, kind, params_text, now, now),
                    )
                    break
                except sqlite3.IntegrityError:
                    continue  # 32 random bits collided; draw again
        return self.job(job_id)

    def job(self, job_id: str) -> dict:
        """Return the job with this id (or unique id prefix); raise NotFoundError otherwise."""
        return decode_row("jobs", self._job_row(job_id))

    def jobs(
        self, state: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[dict]:
        """Return jobs newest first, optionally only those in ``state`` and of ``kind``."""
        if state is not None and state not in JOB_STATES:
            raise ValueError(
                f"unknown job state {state!r}; expected one of {', '.join(JOB_STATES)}"
            )
        clauses, params = [], []
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(
            f"SELECT * FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (*params, int(limit)),
        )
        return [decode_row("jobs", row) for row in rows]

    def jobs_in_state(self, state: str) -> list[dict]:
        """Every job in ``state``, oldest first (used to pick up work after a restart)."""
        if state not in JOB_STATES:
            raise ValueError(
                f"unknown job state {state!r}; expected one of {', '.join(JOB_STATES)}"
            )
        rows = self._rows("SELECT * FROM jobs WHERE state = ? ORDER BY created_at, rowid", (state,))
        return [decode_row("jobs", row) for row in rows]

    def update_job(self, job_id: str, **fields: Any) -> dict:
        """Set ``fields`` of a job and return the new row.

        Moving to ``running`` stamps ``started_at`` (once); moving to a finished state stamps
        ``finished_at``. ``progress`` must lie in [0, 1]; ``eta`` is the estimated seconds left;
        ``params``, ``metrics`` and ``result`` may be given as Python objects.
        """
        if "state" in fields and fields["state"] not in JOB_STATES:
            raise ValueError(
                f"unknown job state {fields['state']!r}; expected one of {', '.join(JOB_STATES)}"
            )
        if fields.get("progress") is not None and not 0.0 <= float(fields["progress"]) <= 1.0:
            raise ValueError(f"progress must lie in [0, 1], got {fields['progress']!r}")
        values = encode_fields("jobs", fields)
        now = now_iso()
        with self._write() as conn:
            current = self._job_row(job_id)
            state = values.get("state")
            if state == "running" and current["started_at"] is None:
                values.setdefault("started_at", now)
            if state in TERMINAL_JOB_STATES and current["finished_at"] is None:
                values.setdefault("finished_at", now)
            values["updated_at"] = now
            assignments = ", ".join(f"{column} = ?" for column in values)
            conn.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), current["id"])
            )
        return self.job(current["id"])

    def claim_job(self, job_id: str, worker: str) -> dict:
        """Mark a job running on ``worker`` and count the attempt, unless it was cancelled.

        Read and write happen in one transaction, so a cancel that arrives while a worker picks
        the job up is never lost: the returned row then has state ``cancelled``.
        """
        now = now_iso()
        with self._write() as conn:
            current = self._job_row(job_id)
            if current["state"] == "cancelled" or current["cancel_requested"]:
                finished = current["finished_at"] or now
                conn.execute(
                    "UPDATE jobs SET state = 'cancelled', finished_at = ?, "
                    "updated_at = ? WHERE id = ?",
                    (finished, now, current["id"]),
                )
            else:
                conn.execute(
                    "UPDATE jobs SET state = 'running', worker = ?, attempts = attempts + 1, "
                    "started_at = COALESCE(started_at, ?), finished_at = NULL, updated_at = ? "
                    "WHERE id = ?",
                    (worker, now, now, current["id"]),
                )
        return self.job(current["id"])

    def try_claim_job(self, job_id: str, worker: str) -> dict | None:
        """Claim a *queued* job for ``worker``; None when it is not queued any more.

        The check and the claim are one transaction, so when a queue message arrives twice
        (possible after recovery re-enqueues a job) exactly one runner gets the job. A cancel
        requested while the job was queued wins, as in :meth:`claim_job`.
        """
        with self._write():
            current = self._job_row(job_id)
            if current["state"] != "queued":
                return None
            return self.claim_job(current["id"], worker)

    def append_job_metrics(self, job_id: str, epoch_metrics: Mapping[str, Any]) -> dict:
        """Append one epoch's metrics to the job's list and return the new row."""
        entry = dict(epoch_metrics)
        with self._write() as conn:
            current = self._job_row(job_id)
            metrics = json.loads(current["metrics"] or "[]")
            metrics.append(entry)
            conn.execute(
                "UPDATE jobs SET metrics = ?, updated_at = ? WHERE id = ?",
                (json.dumps(metrics, sort_keys=True, ensure_ascii=False), now_iso(), current["id"]),
            )
        return self.job(current["id"])

    def request_cancel(self, job_id: str) -> dict:
        """Cancel a queued job at once; ask a running one to stop at its next batch.

        A job that already finished is returned unchanged.
        """
        now = now_iso()
        with self._write() as conn:
            current = self._job_row(job_id)
            if current["state"] == "queued":
                conn.execute(
                    "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, "
                    "finished_at = ?, updated_at = ? WHERE id = ?",
                    (now, now, current["id"]),
                )
            elif current["state"] == "running":
                conn.execute(
                    "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                    (now, current["id"]),
                )
        return self.job(current["id"])

    def _job_row(self, job_id: str) -> dict:
        text = str(job_id).strip()
        row = self._row("SELECT * FROM jobs WHERE id = ?", (text,))
        if row is not None:
            return row
        if len(text) >= _SHORTEST_PREFIX:
            # GLOB, not LIKE: ids are hex, and LIKE would treat '_' in a typo as a wildcard.
            matches = self._rows(
                "SELECT * FROM jobs WHERE id GLOB ? LIMIT 2", (_glob_escape(text) + "*",)
            )
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise NotFoundError(f"job id prefix {text!r} matches several jobs; type more of it")
        raise NotFoundError(f"no job {text!r}")


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)

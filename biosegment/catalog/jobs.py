"""Jobs as catalog rows: what was asked, how far it got, and how it ended (SPEC 6).

The queue (Huey) only carries a job's id; everything a person or another process wants to know
about the job lives in its ``jobs`` row, written by whichever process is running it. Ids are short
random strings that are easy to type in ``biosegment cancel 3f9c2a1b`` (and any unique prefix of
four characters or more finds the job). Every change is one short ``BEGIN IMMEDIATE`` transaction
that reads and writes the row together, so a worker reporting progress, a UI asking to cancel and
a second worker appending metrics never overwrite one another.

A job may hold a model name (``model_name``): a train job the name it will publish, an accepted
one the name a person accepted it under. No two jobs hold the same name, no job holds a name a
catalogued model has, and the claim ends when the job does (a trigger in the schema), so a name is
reserved from the moment it is asked for until it is published or the job fails, is cancelled or
is discarded. ``decision`` records a person's accept or discard of a running job: whichever comes
first is recorded, and the other is refused.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from biosegment.catalog.connection import CatalogConnection
from biosegment.catalog.rows import JOB_STATES, decode_row, encode_fields, now_iso
from biosegment.errors import InputError, NotFoundError, StateError

__all__ = ["JobStore", "TERMINAL_JOB_STATES", "ACTIVE_JOB_STATES", "JOB_ID_LENGTH"]

TERMINAL_JOB_STATES = ("succeeded", "failed", "cancelled")
#: States of a job that somebody still works on (or will).
ACTIVE_JOB_STATES = ("queued", "running")
JOB_ID_LENGTH = 8
_SHORTEST_PREFIX = 4


class JobStore(CatalogConnection):
    """The ``jobs`` table: create, find, update, cancel."""

    def create_job(
        self, kind: str, params: Mapping[str, Any] | None = None, *, model_name: str | None = None
    ) -> dict:
        """Record a new queued job of ``kind`` with ``params``; return its row.

        ``model_name``: the model name the job reserves (see :meth:`require_free_model_name`
        for the refusals), in the same transaction that creates the row.
        """
        if not kind or not isinstance(kind, str):
            raise ValueError("a job needs a kind such as 'segment' or 'train'")
        params_text = json.dumps(dict(params or {}), sort_keys=True, ensure_ascii=False)
        now = now_iso()
        with self._write() as conn:
            if model_name is not None:
                self.require_free_model_name(model_name)
            while True:
                job_id = secrets.token_hex(JOB_ID_LENGTH // 2)
                try:
                    conn.execute(
                        "INSERT INTO jobs (id, kind, params, state, model_name, created_at, "
                        "updated_at) VALUES (?, ?, ?, 'queued', ?, ?, ?)",
                        (job_id, kind, params_text, model_name, now, now),
                    )
                    break
                except sqlite3.IntegrityError:
                    continue  # 32 random bits collided; draw again
        return self.job(job_id)

    def create_job_once(
        self, kind: str, params: Mapping[str, Any], *, same: Callable[[dict], bool]
    ) -> tuple[dict, bool]:
        """The oldest unfinished job of ``kind`` whose params ``same`` accepts, or else a new
        job (as :meth:`create_job`); and whether the job is new.

        The look and the insert are one transaction, so two identical requests sent at once
        (a double click) make one job.
        """
        with self._write():
            rows = self._rows(
                "SELECT * FROM jobs WHERE kind = ? AND state IN ('queued', 'running') "
                "ORDER BY created_at, rowid",
                (kind,),
            )
            for row in rows:
                job = decode_row("jobs", row)
                if same(job.get("params") or {}):
                    return job, False
            return self.create_job(kind, params), True

    def require_free_model_name(self, name: str, *, except_job: str | None = None) -> None:
        """Refuse ``name`` for a new model: :class:`StateError` (at ``name``) naming the job
        that holds it, :class:`InputError` when a catalogued model has it."""
        holder = self._row(
            "SELECT id, state FROM jobs WHERE model_name = ? AND id != ?",
            (name, except_job or ""),
        )
        if holder is not None:
            raise StateError(
                f"model name {name!r} is held by job {holder['id']} ({holder['state']}) until "
                "it publishes its model or ends; choose another name",
                where="name",
            )
        if self._row("SELECT 1 FROM models WHERE name = ?", (name,)) is not None:
            raise InputError(
                f"model {name!r} already exists or is being trained; choose another name",
                where="name",
            )

    def reserved_model_names(self) -> set[str]:
        """The model names unfinished jobs hold."""
        rows = self._rows("SELECT model_name FROM jobs WHERE model_name IS NOT NULL")
        return {row["model_name"] for row in rows}

    def record_accept(self, job_id: str, name: str) -> dict:
        """Record a person's accept of a running job, to be published as model ``name``; the
        job's model name moves to ``name``. Return the new row.

        Refused (:class:`StateError`) when the job is not running, is being cancelled, or
        was already accepted or discarded, and when ``name`` is taken (as in
        :meth:`require_free_model_name`); the check and the record are one transaction.
        """
        with self._write() as conn:
            current = self._job_row(job_id)
            _require_undecided(current)
            if current["state"] != "running" or current["cancel_requested"]:
                doing = "stopping" if current["state"] == "running" else current["state"]
                raise StateError(
                    f"job {current['id']} is {doing}; only a running training can be accepted",
                    where="job_id",
                )
            self.require_free_model_name(name, except_job=current["id"])
            conn.execute(
                "UPDATE jobs SET model_name = ?, decision = 'accepted', updated_at = ? "
                "WHERE id = ?",
                (name, now_iso(), current["id"]),
            )
        return self.job(current["id"])

    def record_discard(self, job_id: str) -> dict:
        """Record a person's discard of a job (the caller then cancels it); return the row.

        Refused (:class:`StateError`) when the job was already accepted or discarded, or has
        published its model; the check and the record are one transaction.
        """
        with self._write() as conn:
            current = self._job_row(job_id)
            _require_undecided(current)
            if current["state"] == "succeeded":
                raise StateError(
                    f"job {current['id']} has finished and published its model; "
                    "delete the model instead",
                    where="job_id",
                )
            conn.execute(
                "UPDATE jobs SET decision = 'discarded', updated_at = ? WHERE id = ?",
                (now_iso(), current["id"]),
            )
        return self.job(current["id"])

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


def _require_undecided(row: Mapping[str, Any]) -> None:
    """Refuse an accept or a discard of a job that a person already accepted or discarded."""
    if row["decision"] == "accepted":
        as_name = f" as model {row['model_name']!r}" if row["model_name"] else ""
        raise StateError(
            f"job {row['id']} was already accepted{as_name}; it publishes the model as it stops",
            where="job_id",
        )
    if row["decision"] == "discarded":
        raise StateError(
            f"job {row['id']} was already discarded; it publishes nothing", where="job_id"
        )


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)

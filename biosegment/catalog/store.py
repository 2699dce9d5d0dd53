"""The catalog: what the data folder holds, as rows of ``<root>/.biosegment/catalog.db``.

:class:`Catalog` answers "which datasets, models, segmentations, annotations and projects exist,
and in what state" for the daemon, the CLI, the workers and the web UI, and records the problems
found in ``setup.json`` and the folder. Writers upsert by natural key (a name, or a dataset and a
name): an upsert that changes nothing writes nothing, so refreshing an unchanged folder leaves
every row, timestamps included, as it was. Things that disappear are marked ``missing``; a row
leaves only through :meth:`Catalog.forget`, when a person moved the thing to the trash or renamed
it, and :meth:`Catalog.forget_many`, which the folder scan uses for a dataset it registered whose
files stayed gone (nothing of it is left on disk to lose). A row's ``origin`` only ever rises
(``scan`` < ``setup`` < ``ui``), so what a person created in the UI is never taken over, and so
never dropped, by a rescan.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from biosegment.catalog.connection import connect, corrupt_catalog_error
from biosegment.catalog.jobs import JobStore
from biosegment.catalog.migrations import migrate
from biosegment.catalog.rows import (
    ENTITY_TABLES,
    JOB_STATES,
    ORIGINS,
    STATES,
    decode_row,
    encode_fields,
    now_iso,
)
from biosegment.errors import BioSegmentError, InputError, NotFoundError
from biosegment.folder_names import CATALOG_FILE, STATE_DIR
from biosegment.paths import resolve_inside
from biosegment.state_folder import private_state_dir

__all__ = ["Catalog", "open_catalog", "catalog_path", "entity_key"]


_KEY_COLUMNS = {
    "projects": ("name",),
    "datasets": ("name",),
    "models": ("name",),
    "segmentations": ("dataset", "name"),
    "annotations": ("dataset", "name"),
}
_ORIGIN_RANK = {origin: rank for rank, origin in enumerate(("scan", "setup", "ui"))}
#: Kinds whose rows :meth:`Catalog.require_usable` checks, and their tables.
_USABLE_KINDS = {"dataset": "datasets", "model": "models"}


def catalog_path(root: Path) -> Path:
    """Where the catalog of the data folder ``root`` lives."""
    return Path(root) / STATE_DIR / CATALOG_FILE


def entity_key(table: str, row: Mapping[str, Any]) -> tuple:
    """The natural key of a row of ``table``: ``(name,)`` or ``(dataset, name)``."""
    return tuple(row[column] for column in _KEY_COLUMNS[table])


def open_catalog(root: Path) -> Catalog:
    """Open (creating and migrating as needed) the catalog of the data folder ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"data folder {root} does not exist")
    path = catalog_path(root)
    private_state_dir(root)  # catalog, queue and logs are for the people who run BioSegment
    conn = connect(path)
    try:
        migrate(conn, source=path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError):
            raise BioSegmentError(f"{path}: cannot prepare the catalog: {exc}") from exc
        raise corrupt_catalog_error(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return Catalog(conn, root=root, path=path)


class Catalog(JobStore):
    """Rows of one data folder's catalog. Create with :func:`open_catalog`; ``close()`` when done."""

    def __init__(self, conn: sqlite3.Connection, *, root: Path, path: Path) -> None:
        super().__init__(conn)
        self.root = Path(root)
        self.path = Path(path)

    # -- reading ----------------------------------------------------------------------------

    def datasets(self, include_missing: bool = True) -> list[dict]:
        """Every dataset, by name; ``include_missing=False`` leaves out those marked missing."""
        return self._list("datasets", include_missing=include_missing)

    def dataset(self, name: str) -> dict:
        return self._get("datasets", (name,))

    def require_usable(self, kind: str, name: str, *, where: str | None = None) -> dict:
        """The row of dataset or model ``name``, when its files can be read now.

        ``kind`` is ``dataset`` or ``model``. An unknown name raises :class:`NotFoundError`; a
        row that is missing, broken or without files raises :class:`InputError` (``where``:
        the request field that named it, default ``kind``) saying its state and why.
        """
        row = self._get(_USABLE_KINDS[kind], (name,))
        if row.get("state") != "ok" or not row.get("location"):
            raise InputError(
                f"{kind} {name!r} is {row.get('state')}: "
                f"{row.get('error') or 'its files are not readable'}",
                where=where or kind,
            )
        return row

    def path_of(self, row: Mapping[str, Any], field: str = "location") -> Path:
        """The path a row's location column (``field``) names, inside the data folder.

        A location that leads outside it (a hand-edited catalog) raises
        :class:`~biosegment.errors.PathEscapeError` naming the catalog and the column.
        """
        return resolve_inside(self.root, row[field], source="catalog", where=field)

    def models(self, include_missing: bool = True) -> list[dict]:
        return self._list("models", include_missing=include_missing)

    def model(self, name: str) -> dict:
        return self._get("models", (name,))

    def segmentations(self, dataset: str | None = None, include_missing: bool = True) -> list[dict]:
        return self._list("segmentations", include_missing=include_missing, dataset=dataset)

    def segmentation(self, dataset: str, name: str) -> dict:
        return self._get("segmentations", (dataset, name))

    def annotations(self, dataset: str | None = None, include_missing: bool = True) -> list[dict]:
        return self._list("annotations", include_missing=include_missing, dataset=dataset)

    def annotation(self, dataset: str, name: str) -> dict:
        return self._get("annotations", (dataset, name))

    def projects(self, include_missing: bool = True) -> list[dict]:
        return self._list("projects", include_missing=include_missing)

    def project(self, name: str) -> dict:
        return self._get("projects", (name,))

    def problems(self, reported_by: str | None = None) -> list[dict]:
        """Open problems, oldest first: dicts with source, where, reason, reported_by, created_at."""
        if reported_by is None:
            return self._rows("SELECT * FROM problems ORDER BY created_at, id")
        return self._rows(
            "SELECT * FROM problems WHERE reported_by = ? ORDER BY created_at, id", (reported_by,)
        )

    def entry_problems(self) -> list[dict]:
        """Every dataset, model, segmentation and annotation in error or missing, as problems.

        Same keys as :meth:`problems` (source, where, reason) plus ``kind``, ``name`` and
        ``state``, so that a count of "2 error" always comes with the two reasons.
        """
        found: list[dict] = []
        for table, kind in (
            ("datasets", "dataset"),
            ("models", "model"),
            ("segmentations", "segmentation"),
            ("annotations", "annotation"),
        ):
            order = ", ".join(_KEY_COLUMNS[table])
            rows = self._rows(
                f"SELECT * FROM {table} WHERE state IN ('error', 'missing') ORDER BY {order}"
            )
            for row in rows:
                name = (
                    f"{row['dataset']}/{row['name']}"
                    if kind in ("segmentation", "annotation")
                    else row["name"]
                )
                found.append(
                    {
                        "kind": kind,
                        "name": name,
                        "state": row["state"],
                        # the reason names the file already
                        "source": f"{kind} {name}",
                        "where": "",
                        "reason": row.get("error") or row["state"],
                    }
                )
        return found

    def all_problems(self) -> list[dict]:
        """:meth:`problems` (setup file, folder) followed by :meth:`entry_problems`."""
        return self.problems() + self.entry_problems()

    def counts(self) -> dict[str, dict[str, int]]:
        """How many rows of each kind, by state: ``{"datasets": {"ok": 3, ..., "total": 4}, ...}``."""
        result: dict[str, dict[str, int]] = {}
        for table in ENTITY_TABLES:
            by_state = {state: 0 for state in STATES}
            for row in self._rows(f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state"):
                by_state[row["state"]] = row["n"]
            result[table] = {**by_state, "total": sum(by_state.values())}
        jobs = {state: 0 for state in JOB_STATES}
        for row in self._rows("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            jobs[row["state"]] = row["n"]
        result["jobs"] = {**jobs, "total": sum(jobs.values())}
        (problems,) = self._rows("SELECT COUNT(*) AS n FROM problems")
        result["problems"] = {"total": problems["n"]}
        return result

    # -- writing ----------------------------------------------------------------------------

    def upsert_project(self, **fields: Any) -> dict:
        return self._upsert_one("projects", fields)

    def upsert_dataset(self, **fields: Any) -> dict:
        """Insert or update the dataset named ``fields["name"]``; ``shape`` may be a (z, y, x)."""
        return self._upsert_one("datasets", fields)

    def upsert_model(self, **fields: Any) -> dict:
        return self._upsert_one("models", fields)

    def upsert_segmentation(self, **fields: Any) -> dict:
        return self._upsert_one("segmentations", fields)

    def upsert_annotation(self, **fields: Any) -> dict:
        return self._upsert_one("annotations", fields)

    def upsert_many(self, table: str, records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Upsert ``records`` of ``table`` in one transaction; count added/updated/unchanged.

        A new row gets ``state='ok'`` and ``origin='ui'`` unless the record says otherwise. An
        existing row changes only in the columns given, and only if a value differs.
        """
        _entity(table)
        prepared = [_checked(table, record) for record in records]
        outcome = {"added": 0, "updated": 0, "unchanged": 0}
        if not prepared:
            return outcome
        now = now_iso()
        with self._write():
            for record in prepared:
                outcome[self._upsert_in_transaction(table, record, now)] += 1
        return outcome

    def mark_missing(
        self, table: str, name: str, *, dataset: str | None = None, reason: str | None = None
    ) -> dict:
        """Mark a row missing (its files are gone); segmentations and annotations need ``dataset``."""
        key = _key_for(table, name, dataset)
        self.mark_missing_many(table, [key], reason=reason)
        return self._get(table, key)

    def mark_missing_many(
        self, table: str, keys: Iterable[tuple], *, reason: str | None = None
    ) -> int:
        """Mark the rows with these natural keys missing; return how many changed."""
        where = _key_match(_entity(table))
        changed = 0
        now = now_iso()
        with self._write() as conn:
            for key in keys:
                if table == "projects":  # a project is a declaration: no files, no error text
                    cursor = conn.execute(
                        f"UPDATE projects SET state = 'missing', updated_at = ? "
                        f"WHERE {where} AND state != 'missing'",
                        (now, *key),
                    )
                else:
                    cursor = conn.execute(
                        f"UPDATE {table} SET state = 'missing', error = ?, updated_at = ? "
                        f"WHERE {where} AND (state != 'missing' OR error IS NOT ?)",
                        (reason, now, *key, reason),
                    )
                changed += cursor.rowcount
        return changed

    def forget(self, table: str, name: str, *, dataset: str | None = None) -> int:
        """Delete the row of a thing a person moved to the trash or renamed (its files are no
        longer where the row says); return how many rows went (0 or 1)."""
        key = _key_for(table, name, dataset)
        with self._write() as conn:
            return conn.execute(f"DELETE FROM {table} WHERE {_key_match(table)}", key).rowcount

    def forget_many(self, table: str, keys: Iterable[tuple]) -> int:
        """Delete the rows with these natural keys that are marked missing; return how many.

        Only a row already marked missing can go, so a thing whose files came back meanwhile
        is never forgotten.
        """
        where = _key_match(_entity(table))
        forgotten = 0
        with self._write() as conn:
            for key in keys:
                forgotten += conn.execute(
                    f"DELETE FROM {table} WHERE {where} AND state = 'missing'", key
                ).rowcount
        return forgotten

    def set_origin(self, table: str, keys: Iterable[tuple], origin: str) -> int:
        """Hand rows over to another origin (used when setup.json stops declaring them)."""
        if origin not in ORIGINS:
            raise ValueError(f"unknown origin {origin!r}")
        where = _key_match(_entity(table))
        changed = 0
        now = now_iso()
        with self._write() as conn:
            for key in keys:
                changed += conn.execute(
                    f"UPDATE {table} SET origin = ?, updated_at = ? WHERE {where} AND origin != ?",
                    (origin, now, *key, origin),
                ).rowcount
        return changed

    def set_problems(self, source: str, problems: Iterable[InputError | Mapping[str, Any]]) -> None:
        """Replace every problem reported by ``source`` with ``problems``.

        ``source`` names the check: ``"setup.json"`` for the setup file, ``"scan"`` for the folder
        scan. Each problem is an :class:`InputError` or a dict with ``reason`` and optionally
        ``source`` (the file, default: ``source``) and ``where``. A problem reported again keeps
        its original ``created_at``, so repeated refreshes do not churn the table.
        """
        wanted: list[tuple[str, str | None, str]] = []
        for problem in problems:
            data = problem.as_dict() if isinstance(problem, InputError) else dict(problem)
            entry = (str(data.get("source") or source), data.get("where"), str(data["reason"]))
            if entry not in wanted:
                wanted.append(entry)
        with self._write() as conn:
            existing = conn.execute(
                'SELECT id, source, "where", reason FROM problems WHERE reported_by = ?', (source,)
            ).fetchall()
            kept = set()
            for row in existing:
                entry = (row["source"], row["where"], row["reason"])
                if entry in wanted and entry not in kept:
                    kept.add(entry)
                else:
                    conn.execute("DELETE FROM problems WHERE id = ?", (row["id"],))
            now = now_iso()
            for entry in wanted:
                if entry not in kept:
                    conn.execute(
                        'INSERT INTO problems (reported_by, source, "where", reason, '
                        "created_at) VALUES (?, ?, ?, ?, ?)",
                        (source, *entry, now),
                    )

    def restore_rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Copy rows read from an older catalog (a reindex), keeping the columns this schema has.

        Rows whose key already exists are skipped. Returns how many were inserted.
        """
        if table != "jobs":
            _entity(table)
        rows = list(rows)
        if not rows:
            return 0
        columns = [info[1] for info in self._conn.execute(f"PRAGMA table_info({table})")]
        inserted = 0
        with self._write() as conn:
            for row in rows:
                # Entity ids are row numbers of the old file; job ids are what people typed.
                wanted = [c for c in columns if c in row and (c != "id" or table == "jobs")]
                names = ", ".join(f'"{c}"' for c in wanted)
                marks = ", ".join("?" for _ in wanted)
                inserted += conn.execute(
                    f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})",
                    [row[c] for c in wanted],
                ).rowcount
        return inserted

    # -- helpers ----------------------------------------------------------------------------

    def _list(self, table: str, *, include_missing: bool, dataset: str | None = None) -> list[dict]:
        clauses, params = [], []
        if not include_missing:
            clauses.append("state != 'missing'")
        if dataset is not None:
            clauses.append("dataset = ?")
            params.append(dataset)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = ", ".join(_KEY_COLUMNS[table])
        rows = self._rows(f"SELECT * FROM {table} {where} ORDER BY {order}", params)
        return [decode_row(table, row) for row in rows]

    def _get(self, table: str, key: tuple) -> dict:
        where = _key_match(table)
        row = self._row(f"SELECT * FROM {table} WHERE {where}", key)
        if row is None:
            label = "/".join(str(part) for part in key)
            raise NotFoundError(f"no {table[:-1]} {label!r}")
        return decode_row(table, row)

    def _upsert_one(self, table: str, fields: Mapping[str, Any]) -> dict:
        record = _checked(table, fields)
        with self._write():
            self._upsert_in_transaction(table, record, now_iso())
        return self._get(table, entity_key(table, record))

    def _upsert_in_transaction(self, table: str, record: dict[str, Any], now: str) -> str:
        key = entity_key(table, record)
        existing = self._conn.execute(
            f"SELECT * FROM {table} WHERE {_key_match(table)}", key
        ).fetchone()
        if existing is None:
            row = {"state": "ok", "origin": "ui", **record, "created_at": now, "updated_at": now}
            self._db.table(table).insert(row)
            return "added"
        changes = {}
        for column, value in record.items():
            if column == "origin" and _ORIGIN_RANK[value] <= _ORIGIN_RANK[existing["origin"]]:
                continue
            if existing[column] != value:
                changes[column] = value
        if not changes:
            return "unchanged"
        changes["updated_at"] = now
        self._db.table(table).update(existing["id"], changes)
        return "updated"


def _entity(table: str) -> str:
    if table not in ENTITY_TABLES:
        raise ValueError(
            f"unknown catalog table {table!r}; expected one of {', '.join(ENTITY_TABLES)}"
        )
    return table


def _key_match(table: str) -> str:
    """The WHERE condition that picks a row of ``table`` by its natural key (as parameters)."""
    return " AND ".join(f"{column} = ?" for column in _KEY_COLUMNS[table])


def _key_for(table: str, name: str, dataset: str | None) -> tuple:
    if _KEY_COLUMNS[_entity(table)] == ("dataset", "name"):
        if dataset is None:
            raise ValueError(f"{table} are named within a dataset: pass dataset=")
        return (dataset, name)
    return (name,)


def _checked(table: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    record = encode_fields(table, fields)
    for column in _KEY_COLUMNS[table]:
        value = record.get(column)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{table} rows need a non-empty {column!r}")
    if "state" in record and record["state"] not in STATES:
        raise ValueError(f"unknown state {record['state']!r}; expected one of {', '.join(STATES)}")
    if "origin" in record and record["origin"] not in ORIGINS:
        raise ValueError(
            f"unknown origin {record['origin']!r}; expected one of {', '.join(ORIGINS)}"
        )
    return record

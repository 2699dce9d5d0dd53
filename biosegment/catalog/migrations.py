"""The catalog's schema, as one ordered list of versioned migrations.

Every change to ``catalog.db`` is a new entry at the end of :data:`MIGRATIONS`; entries already
released are never edited. ``migrate`` applies, in order and each inside its own ``BEGIN
IMMEDIATE`` transaction, the migrations a database has not seen yet and records them in the
``migrations`` table, so several processes opening the same folder at once apply each step exactly
once. Nothing here drops a table: a catalog created by an older BioSegment is brought forward with
its rows intact, and one written by a newer BioSegment is refused rather than damaged.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from biosegment.errors import BioSegmentError

__all__ = ["Migration", "MIGRATIONS", "LATEST_VERSION", "schema_version", "migrate"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its version number, what it does, and its SQL."""

    version: int
    description: str
    sql: str


_CORE_TABLES = """
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    classes TEXT,                       -- JSON list of {id, name, color}
    default_model TEXT,
    auto_segment INTEGER,               -- NULL: follow the setup file's global switch
    state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'missing', 'error')),
    origin TEXT NOT NULL DEFAULT 'ui' CHECK (origin IN ('setup', 'scan', 'ui')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    project TEXT,
    location TEXT,                      -- relative to the data root
    file_type TEXT,
    shape_z INTEGER,
    shape_y INTEGER,
    shape_x INTEGER,
    dtype TEXT,
    voxel_size TEXT,                    -- JSON [z, y, x] in nm
    resolution TEXT,                    -- JSON [x, y, z] in voxels, as setup.json states it
    ground_truth TEXT,                  -- location of the ground-truth labels, if any
    state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'missing', 'error')),
    error TEXT,
    origin TEXT NOT NULL DEFAULT 'ui' CHECK (origin IN ('setup', 'scan', 'ui')),
    fingerprint TEXT,                   -- size and mtime of the files last probed
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    project TEXT,
    location TEXT,
    architecture TEXT,                  -- JSON
    classes TEXT,                       -- JSON list
    parent TEXT,
    metrics TEXT,                       -- JSON
    state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'missing', 'error')),
    error TEXT,
    origin TEXT NOT NULL DEFAULT 'ui' CHECK (origin IN ('setup', 'scan', 'ui')),
    fingerprint TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE segmentations (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    name TEXT NOT NULL,
    model TEXT,
    location TEXT,
    state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'missing', 'error')),
    error TEXT,
    origin TEXT NOT NULL DEFAULT 'ui' CHECK (origin IN ('setup', 'scan', 'ui')),
    fingerprint TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (dataset, name)
);

CREATE TABLE annotations (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    name TEXT NOT NULL,
    location TEXT,
    classes TEXT,                       -- JSON list
    slices TEXT,                        -- JSON list of annotated z indices
    state TEXT NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'missing', 'error')),
    error TEXT,
    origin TEXT NOT NULL DEFAULT 'ui' CHECK (origin IN ('setup', 'scan', 'ui')),
    fingerprint TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (dataset, name)
);

CREATE INDEX segmentations_by_dataset ON segmentations (dataset);
CREATE INDEX annotations_by_dataset ON annotations (dataset);
"""

_JOBS_TABLE = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',  -- JSON
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress REAL NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    eta REAL,                           -- seconds left, as last estimated
    message TEXT,
    metrics TEXT NOT NULL DEFAULT '[]', -- JSON list, one object per epoch
    log_path TEXT,
    result TEXT,                        -- JSON
    worker TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL
);

CREATE INDEX jobs_by_state ON jobs (state);
CREATE INDEX jobs_by_created ON jobs (created_at);
"""

_PROBLEMS_TABLE = """
CREATE TABLE problems (
    id INTEGER PRIMARY KEY,
    reported_by TEXT NOT NULL,          -- the check that found it: 'setup.json', 'scan', ...
    source TEXT NOT NULL,               -- the file it is about, relative to the data root
    "where" TEXT,                       -- line and column, or key such as datasets[2].location
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX problems_by_reporter ON problems (reported_by);
"""

# A model name is reserved by the job that will publish it (a train job's name, or the name a
# person accepted a running job under) until the job ends: the unique index makes the claim
# atomic, and the trigger releases it whichever way the job ends. Jobs still unfinished when the
# catalog is migrated keep their names, the oldest job of a name first. ``decision`` records a
# person's accept or discard, so only the first of the two ever takes effect; ``crashes`` counts
# the runs whose runner died under them, so a job that stops its process is not re-run forever.
_JOB_CLAIMS = """
ALTER TABLE jobs ADD COLUMN model_name TEXT;
ALTER TABLE jobs ADD COLUMN decision TEXT CHECK (decision IN ('accepted', 'discarded'));
ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;

UPDATE jobs SET model_name = CASE WHEN json_valid(params) THEN json_extract(params, '$.name') END
WHERE kind = 'train' AND state IN ('queued', 'running');
UPDATE jobs SET model_name = NULL WHERE typeof(model_name) != 'text';
UPDATE jobs SET model_name = NULL
WHERE model_name IS NOT NULL AND rowid != (
    SELECT MIN(other.rowid) FROM jobs AS other WHERE other.model_name = jobs.model_name
);

CREATE UNIQUE INDEX jobs_by_model_name ON jobs (model_name) WHERE model_name IS NOT NULL;

CREATE TRIGGER jobs_release_model_name AFTER UPDATE OF state ON jobs
WHEN NEW.state IN ('succeeded', 'failed', 'cancelled') AND NEW.model_name IS NOT NULL
BEGIN
    UPDATE jobs SET model_name = NULL WHERE id = NEW.id;
END;
"""

#: Every schema step, oldest first. Append only.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "projects, datasets, models, segmentations and annotations", _CORE_TABLES),
    Migration(2, "jobs with progress, metrics and cancellation", _JOBS_TABLE),
    Migration(3, "problems found in setup.json and the data folder", _PROBLEMS_TABLE),
    Migration(4, "model names held by jobs, accept or discard, runs lost to crashes", _JOB_CLAIMS),
)

LATEST_VERSION = MIGRATIONS[-1].version

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the highest migration applied to ``conn`` (0 for a new, empty database)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    if not exists:
        return 0
    (version,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM migrations").fetchone()
    return int(version)


def migrate(conn: sqlite3.Connection, *, target: int | None = None, source: object = None) -> int:
    """Apply the migrations ``conn`` lacks, up to ``target`` (default: the latest).

    ``conn`` must be in autocommit mode (``isolation_level=None``). Returns the version reached.
    Raises :class:`BioSegmentError` naming ``source`` when the database is newer than this code.
    """
    goal = LATEST_VERSION if target is None else target
    for migration in MIGRATIONS:
        if migration.version > goal:
            break
        # One transaction per step, re-reading the version inside it: another process may have
        # applied this step between our check and our lock.
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_MIGRATIONS_TABLE)
            current = schema_version(conn)
            if current > LATEST_VERSION:
                raise BioSegmentError(
                    f"{source or 'catalog'}: schema version {current} was written by a newer "
                    f"BioSegment (this one knows up to {LATEST_VERSION}); upgrade BioSegment"
                )
            if current < migration.version:
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO migrations (version, description, applied_at) VALUES (?, ?, ?)",
                    (
                        migration.version,
                        migration.description,
                        datetime.now(UTC).isoformat(timespec="milliseconds"),
                    ),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    version = schema_version(conn)
    if version > LATEST_VERSION:
        raise BioSegmentError(
            f"{source or 'catalog'}: schema version {version} was written by a newer BioSegment "
            f"(this one knows up to {LATEST_VERSION}); upgrade BioSegment"
        )
    return version


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit our transaction)."""
    statements, pending = [], ""
    for line in script.splitlines():
        pending += line.split("--", 1)[0] + "\n"
        if sqlite3.complete_statement(pending):
            if pending.strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements

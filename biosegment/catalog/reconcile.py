"""Apply ``setup.json`` to the catalog (SPEC 3): add, update, mark missing, never drop.

The file is an input, never a database. Rules:

- An invalid file (bad JSON, wrong types, unknown ``file_type``, a location with ``..`` or an
  absolute path) changes nothing: the catalog keeps the state of the last valid file, and every
  problem is recorded (``Catalog.problems(reported_by="setup.json")``) with the file, the line
  and column or the key, and the reason. A copy of the last valid file is kept in
  ``.biosegment/setup.last-good.json`` so the scan still knows where the images live.
- A valid file is applied entry by entry. An entry whose files are missing or unreadable is a
  per-entry problem: that row is marked ``missing`` (nothing there) or ``error`` (something
  there that cannot be read), the problem is recorded with the entry's key, and every other entry
  is applied as usual.
- Entries removed from the file are handed to the folder scan (origin ``scan``): they stay listed
  while their files exist and are marked missing when they are gone. Projects removed from the
  file are marked missing. Rows created in the UI are never touched here.
- With no ``setup.json`` at all, everything it used to declare is handed to the scan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from biosegment.catalog.layout import (
    LEGACY_ANNOTATIONS,
    dataset_layout,
    join,
    legacy_ground_truth,
    model_weights_location,
    segmentation_volume_location,
)
from biosegment.catalog.probe import (
    annotation_facts,
    dataset_facts,
    model_facts,
    segmentation_facts,
)
from biosegment.catalog.report import CatalogReport
from biosegment.catalog.scan import import_legacy_file
from biosegment.catalog.setup_file import (
    SetupAnnotation,
    SetupDataset,
    SetupDocument,
    SetupEntry,
    SetupModel,
    SetupSegmentation,
    check_setup_data,
    validate_setup,
)
from biosegment.catalog.store import Catalog, entity_key
from biosegment.errors import InputError, SetupError
from biosegment.folder_names import (
    ANNOTATIONS_DIR,
    MODEL_WEIGHTS,
    MODELS_DIR,
    SETUP_FILE,
    SETUP_LAST_GOOD_FILE,
    STATE_DIR,
)
from biosegment.paths import resolve_inside
from biosegment.volumes.atomic import AtomicFile

__all__ = ["reconcile_setup", "apply_setup", "last_good_setup"]


def reconcile_setup(catalog: Catalog, root: Path) -> CatalogReport:
    """Validate ``<root>/setup.json`` and apply it; see the module docstring for the rules."""
    started = time.perf_counter()
    root = Path(root)
    document, problems = validate_setup(root)
    if problems:
        report = CatalogReport(setup="invalid")
        catalog.set_problems(SETUP_FILE, problems)
        report.add_problems(problems)
    elif document is None:
        report = CatalogReport(setup="absent")
        _release_all(catalog, report)
        catalog.set_problems(SETUP_FILE, [])
        (root / STATE_DIR / SETUP_LAST_GOOD_FILE).unlink(missing_ok=True)
    else:
        report = apply_setup(catalog, root, document)
        _keep_last_good(root, document)
    report.seconds = time.perf_counter() - started
    return report


def last_good_setup(root: Path) -> SetupDocument | None:
    """The last valid ``setup.json`` this catalog applied, or None."""
    path = Path(root) / STATE_DIR / SETUP_LAST_GOOD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    document, problems = check_setup_data(root, data)
    return None if problems else document


def apply_setup(catalog: Catalog, root: Path, document: SetupDocument) -> CatalogReport:
    """Apply a validated document: projects, then datasets, models, segmentations, annotations."""
    report = CatalogReport(setup="valid")
    problems: list[InputError] = []
    _apply_projects(catalog, document, report)
    tables: tuple[tuple[str, Sequence[SetupEntry], Callable[..., dict]], ...] = (
        ("datasets", document.datasets, _dataset_record),
        ("models", document.models, _model_record),
        ("segmentations", document.segmentations, _segmentation_record),
        ("annotations", document.annotations, _annotation_record),
    )
    for table, entries, make_record in tables:
        existing = {entity_key(table, row): row for row in _rows(catalog, table)}
        made_in_ui = {
            row.get("location"): row
            for row in existing.values()
            if row["origin"] == "ui" and row.get("location")
        }
        records, newly_missing = [], 0
        # Records are built (files probed) before the short write transaction that stores them.
        for entry in entries:
            key = entry.catalog_key
            previous = existing.get(key)
            if previous is not None and previous["origin"] == "ui":
                # what people made in the UI is theirs: a title in the file never takes it over
                problems.append(
                    SetupError(
                        f"{table[:-1]} {'/'.join(key)!r} was created in the web UI "
                        f"({previous.get('location')}); setup.json cannot take it over; give the "
                        "entry another title",
                        source=SETUP_FILE,
                        where=entry.where,
                    )
                )
                continue
            location = getattr(entry, "location", None)
            if location and location in made_in_ui:
                owner = made_in_ui[location]
                problems.append(
                    SetupError(
                        f"{location} belongs to {table[:-1]} "
                        f"{'/'.join(entity_key(table, owner))!r}, created in the web UI; "
                        "setup.json cannot take it over",
                        source=SETUP_FILE,
                        where=entry.where,
                    )
                )
                continue
            try:
                record = make_record(catalog, root, document, entry, previous, problems)
            except InputError as exc:  # e.g. a symlink inside the entry leads out of the folder
                record = {"state": "error", "error": exc.reason}
                problems.append(SetupError(exc.reason, source=SETUP_FILE, where=entry.where))
            record.update(zip(_KEYS[table], key), origin="setup")
            if record["state"] == "missing" and (previous or {}).get("state") != "missing":
                newly_missing += 1
            records.append(record)
        report.add_counts(table, catalog.upsert_many(table, records))
        report.tally(table, "missing", newly_missing)
        declared = {entity_key(table, record) for record in records}
        released = [
            key for key, row in existing.items() if row["origin"] == "setup" and key not in declared
        ]
        catalog.set_origin(table, released, "scan")
    catalog.set_problems(SETUP_FILE, problems)
    report.add_problems(problems)
    return report


# -- per entry ------------------------------------------------------------------------------

_KEYS = {
    "datasets": ("name",),
    "models": ("name",),
    "segmentations": ("dataset", "name"),
    "annotations": ("dataset", "name"),
}


def _apply_projects(catalog: Catalog, document: SetupDocument, report: CatalogReport) -> None:
    records = []
    for project in document.projects:
        auto = project.auto_segment if project.auto_segment is not None else document.auto_segment
        records.append(
            {
                "name": project.title,
                "origin": "setup",
                "state": "ok",
                "classes": None
                if project.classes is None
                else [c.as_dict() for c in project.classes],
                "default_model": project.default_model,
                "auto_segment": bool(auto),
            }
        )
    report.add_counts("projects", catalog.upsert_many("projects", records))
    declared = {record["name"] for record in records}
    gone = [
        (row["name"],)
        for row in catalog.projects()
        if row["origin"] == "setup" and row["name"] not in declared and row["state"] != "missing"
    ]
    if gone:
        report.tally(
            "projects",
            "missing",
            catalog.mark_missing_many("projects", gone, reason=f"no longer in {SETUP_FILE}"),
        )


def _dataset_record(
    catalog: Catalog,
    root: Path,
    document: SetupDocument,
    entry: SetupDataset,
    previous: dict | None,
    problems: list[InputError],
) -> dict:
    record: dict[str, Any] = {
        "project": entry.project or document.default_project,
        "resolution": None if entry.resolution is None else list(entry.resolution),
    }
    layout = dataset_layout(root, entry.location)
    record["ground_truth"] = layout.ground_truth or legacy_ground_truth(root, entry.title)
    if layout.volume is None:
        exists = resolve_inside(root, layout.searched).exists()
        reason = (
            "no image files (a multi-page TIFF or a folder of TIFF or PNG slices)"
            if exists
            else "not found"
        )
        record.update(
            location=layout.searched,
            state="error" if exists else "missing",
            error=f"{layout.searched}: {reason}",
            fingerprint=None,
        )
        # the person named it here, so its absence stays a problem until they decide
        remedy = "" if exists else f"; put its files back, or remove its entry from {SETUP_FILE}"
        _entry_problem(problems, "dataset", entry, f"{layout.searched}: {reason}{remedy}")
        return record
    volume = layout.volume
    if entry.file_type in ("tifseq", "pngseq") and volume != layout.searched:
        volume = layout.searched  # a one-slice folder is still a folder of slices
    if entry.key:
        volume = join(volume, entry.key)  # the array inside its HDF5/Zarr/N5 container
    record["location"] = volume
    record.update(dataset_facts(root, volume, file_type=entry.file_type, previous=previous))
    if entry.voxel_size is not None:
        record["voxel_size"] = list(entry.voxel_size)
    if record["state"] != "ok":
        _entry_problem(problems, "dataset", entry, record["error"])
    elif entry.resolution is not None and record.get("shape"):
        stated = list(entry.resolution)
        z, y, x = record["shape"]
        actual = [x, y, z][: len(stated)]
        if stated != actual:
            problems.append(
                SetupError(
                    f"resolution {stated} (x, y, z) does not match the files, which hold {actual}; "
                    "the files win",
                    source=SETUP_FILE,
                    where=f"{entry.where}.resolution",
                )
            )
    return record


def _model_record(
    catalog: Catalog,
    root: Path,
    document: SetupDocument,
    entry: SetupModel,
    previous: dict | None,
    problems: list[InputError],
) -> dict:
    record: dict[str, Any] = {"project": entry.project or document.default_project}
    location = entry.location
    if location is not None and resolve_inside(root, location).is_dir():
        location = join(location, MODEL_WEIGHTS)
    if location is None:
        location = model_weights_location(root, entry.title)
    if location is None or not resolve_inside(root, location).is_file():
        searched = location or join(MODELS_DIR, entry.title, MODEL_WEIGHTS)
        record.update(location=searched, state="missing", error=f"{searched}: not found")
        _entry_problem(problems, "model", entry, f"{searched}: not found")
        return record
    record["location"] = location
    record.update(model_facts(root, location, previous=previous))
    if record["state"] != "ok":
        _entry_problem(problems, "model", entry, record["error"])
    return record


def _segmentation_record(
    catalog: Catalog,
    root: Path,
    document: SetupDocument,
    entry: SetupSegmentation,
    previous: dict | None,
    problems: list[InputError],
) -> dict:
    record: dict[str, Any] = {"model": entry.model}
    location = segmentation_volume_location(root, entry.location)
    if location is None:
        record.update(
            location=entry.location, state="missing", error=f"{entry.location}: not found"
        )
        _entry_problem(problems, "segmentation", entry, f"{entry.location}: not found")
        return record
    record["location"] = location
    record.update(segmentation_facts(root, location, previous=previous))
    if record["state"] != "ok":
        _entry_problem(problems, "segmentation", entry, record["error"])
    return record


def _annotation_record(
    catalog: Catalog,
    root: Path,
    document: SetupDocument,
    entry: SetupAnnotation,
    previous: dict | None,
    problems: list[InputError],
) -> dict:
    path = resolve_inside(root, entry.location)
    folder = entry.location
    if path.is_file():
        # The old stack pointed at its annotations.json; slices go to a folder of their own.
        folder = join(ANNOTATIONS_DIR, entry.dataset, entry.title)
        import_legacy_file(catalog, root, entry.dataset, entry.location, folder, problems)
    elif (path / LEGACY_ANNOTATIONS).is_file():
        import_legacy_file(
            catalog, root, entry.dataset, join(folder, LEGACY_ANNOTATIONS), folder, problems
        )
    record: dict[str, Any] = {"location": folder}
    record.update(annotation_facts(root, folder, previous=previous))
    if record["state"] != "ok":
        _entry_problem(problems, "annotation", entry, record["error"])
    return record


# -- helpers --------------------------------------------------------------------------------


def _entry_problem(problems: list[InputError], kind: str, entry: SetupEntry, message: str) -> None:
    """Note a problem with one entry of ``setup.json``, named by its kind and title."""
    problems.append(
        SetupError(f"{kind} {entry.title!r}: {message}", source=SETUP_FILE, where=entry.where)
    )


def _rows(catalog: Catalog, table: str) -> list[dict]:
    readers: dict[str, Callable[[], list[dict]]] = {
        "datasets": catalog.datasets,
        "models": catalog.models,
        "segmentations": catalog.segmentations,
        "annotations": catalog.annotations,
    }
    return readers[table]()


def _release_all(catalog: Catalog, report: CatalogReport) -> None:
    for table in ("datasets", "models", "segmentations", "annotations"):
        catalog.set_origin(
            table,
            [entity_key(table, row) for row in _rows(catalog, table) if row["origin"] == "setup"],
            "scan",
        )
    gone = [
        (row["name"],)
        for row in catalog.projects()
        if row["origin"] == "setup" and row["state"] != "missing"
    ]
    if gone:
        report.tally(
            "projects",
            "missing",
            catalog.mark_missing_many("projects", gone, reason=f"{SETUP_FILE} removed"),
        )


def _keep_last_good(root: Path, document: SetupDocument) -> None:
    """Copy the file just applied, so an invalid edit later still leaves its facts known."""

    try:
        content = document.path.read_bytes()
    except OSError:
        return
    target = root / STATE_DIR / SETUP_LAST_GOOD_FILE
    try:
        if target.read_bytes() == content:
            return
    except OSError:
        pass
    with AtomicFile(target) as handle:
        handle.file.write(content)

"""Register what the data folder holds: the folder is the truth (SPEC 2).

``scan_data_folder`` walks the fixed layout (``EM/``, ``models/``, ``segmentations/``,
``annotations/``), probes what it finds through :mod:`~biosegment.catalog.probe` (headers only,
skipped when a size+mtime fingerprint is unchanged) and upserts one row per thing with origin
``scan``. Rows the scan created whose files are gone are marked ``missing`` and come back to
``ok`` when the files return; a dataset among them that stays gone is forgotten
(:mod:`~biosegment.catalog.forgetting`), other rows are kept. Rows ``setup.json`` declares are
its reconciler's; rows created in the UI keep their name and origin, get fresh facts when the
scan meets their files, and are marked missing only once their files were seen and are gone (a
UI row whose output a job has not written yet is left alone). A location is never registered
twice under two names, and a name is never taken from its owner: both are reported as problems. Temporary names (files being copied
or written) and ``.biosegment/`` are ignored. An unreadable thing is a row in state ``error``
naming the file and never stops the scan of everything else; a symlink that leads out of the data
folder is a problem, not a row. Old-stack ``annotations.json`` files are imported on sight
(:mod:`~biosegment.catalog.legacy_annotations`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from biosegment.catalog.forgetting import FORGET_AFTER_SECONDS, forgettable
from biosegment.catalog.layout import (
    LEGACY_ANNOTATIONS,
    DatasetLayout,
    dataset_layout,
    join,
    legacy_ground_truth,
    segmentation_volume_location,
)
from biosegment.catalog.legacy_annotations import ANNOTATION_META, import_legacy_annotations
from biosegment.catalog.probe import (
    ANNOTATION_SLICE,
    annotation_facts,
    dataset_facts,
    model_facts,
    segmentation_facts,
)
from biosegment.catalog.report import CatalogReport
from biosegment.catalog.setup_file import SetupDocument
from biosegment.catalog.store import Catalog, entity_key
from biosegment.errors import InputError, NotFoundError
from biosegment.folder_names import (
    ANNOTATIONS_DIR,
    EM_DIR,
    LABELS_DIR,
    MODEL_SUFFIX,
    MODEL_WEIGHTS,
    MODELS_DIR,
    SEGMENTATION_CARD,
    SEGMENTATIONS_DIR,
)
from biosegment.paths import is_temporary_name, resolve_inside
from biosegment.volumes import CONTAINER_FILE_SUFFIXES, IMAGE_SUFFIXES, volume_stem

__all__ = ["scan_data_folder", "import_legacy_file", "SCAN_REPORTER"]

#: Name under which the scan's problems are recorded (``Catalog.problems(reported_by=...)``).
SCAN_REPORTER = "scan"


def scan_data_folder(
    catalog: Catalog,
    root: Path,
    *,
    setup: SetupDocument | None = None,
    forget_after: float = FORGET_AFTER_SECONDS,
) -> CatalogReport:
    """Register every dataset, model, segmentation and annotation the folder holds.

    ``setup`` (the last valid ``setup.json``) says where the images live (``EM_location``) and
    which project undeclared datasets join; without it they are ``EM`` and none. A dataset that
    has been gone from the image folder for ``forget_after`` seconds is forgotten.
    """
    started = time.perf_counter()
    root = Path(root)
    report = CatalogReport()
    problems: list[InputError] = []
    em = setup.em_location if setup else EM_DIR
    project = setup.default_project if setup else None
    images = _top_folder(root, em, [])
    if images is not None and images.is_dir():
        now = time.time()
        gone_reason = "no longer in the data folder"
        forget: Callable[[dict], bool] | None = partial(
            forgettable, forget_after=forget_after, now=now
        )
    else:
        # Not a deletion: a drive that is not mounted, a folder being moved. Keep and say so.
        gone_reason = f"{em}: the image folder is not there"
        forget = None

    # Datasets first: importing old annotations needs their slice size.
    _apply(
        catalog,
        "datasets",
        _find_datasets(root, em, project, problems),
        report,
        problems,
        gone_reason=gone_reason,
        forget=forget,
    )
    _apply(catalog, "models", _find_models(root, problems), report, problems)
    _apply(catalog, "segmentations", _find_segmentations(root, problems), report, problems)
    _apply(catalog, "annotations", _find_annotations(catalog, root, problems), report, problems)

    catalog.set_problems(SCAN_REPORTER, problems)
    report.add_problems(problems)
    report.seconds = time.perf_counter() - started
    return report


def import_legacy_file(
    catalog: Catalog,
    root: Path,
    dataset: str,
    source: str,
    destination: str,
    problems: list[InputError],
) -> None:
    """Import an old-stack annotations.json for ``dataset`` once its slice size is known."""
    try:
        row = catalog.dataset(dataset)
    except NotFoundError:
        row = None
    if row is None or not row.get("shape"):
        problems.append(
            InputError(
                f"dataset {dataset!r} is not (yet) readable, so the slice "
                "size is unknown; import postponed",
                source=source,
            )
        )
        return
    _, height, width = row["shape"]
    try:
        result = import_legacy_annotations(root, source, destination, (height, width))
    except InputError as exc:  # a symlink on the way leads out of the data folder
        problems.append(InputError(exc.reason, source=source))
        return
    except OSError as exc:
        problems.append(InputError(f"cannot write {destination}: {exc}", source=source))
        return
    problems.extend(result.problems)


# -- discovery ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Found:
    """One thing found on disk: its key columns, location, and how to probe it."""

    key: dict[str, str]
    location: str
    facts: Callable[[dict | None], dict]  #: previous row (or None) -> column values


class _Probe(Protocol):
    """A probe of the thing at ``location`` that reuses the row it had when nothing changed."""

    def __call__(
        self, root: Path, location: str, *, previous: Mapping[str, Any] | None = None
    ) -> dict[str, Any]: ...


def _probe_with_previous(probe: _Probe, root: Path, location: str) -> Callable[[dict | None], dict]:
    """``probe`` of ``location`` as :attr:`_Found.facts`: called with the previous row."""
    return lambda previous: probe(root, location, previous=previous)


def _top_folder(root: Path, location: str, problems: list[InputError]) -> Path | None:
    """One of the data folder's top-level folders, unless a symlink takes it elsewhere."""
    try:
        return resolve_inside(root, location)
    except InputError as exc:
        problems.append(InputError(exc.reason, source=location))
        return None


def _entries(folder: Path | None) -> list[os.DirEntry]:
    """Visible, finished entries of ``folder`` in a stable order (none if it does not exist)."""
    if folder is None:
        return []
    try:
        with os.scandir(folder) as entries:
            kept = [e for e in entries if not is_temporary_name(e.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(kept, key=lambda e: e.name)


def _find_datasets(
    root: Path, em: str, project: str | None, problems: list[InputError]
) -> Iterator[_Found]:
    for entry in _entries(_top_folder(root, em, problems)):
        location = join(em, entry.name)
        if entry.is_dir():
            name = volume_stem(entry.name)  # EM/cells.ome.zarr is the dataset "cells"
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES | CONTAINER_FILE_SUFFIXES:
            name = os.path.splitext(entry.name)[0]
        else:
            continue
        try:
            layout = dataset_layout(root, location)
        except InputError as exc:  # a symlink out of the data folder
            problems.append(InputError(exc.reason, source=location))
            continue
        yield _Found(
            {"name": name},
            layout.volume or layout.searched,
            partial(_dataset_facts, root, name, layout, project),
        )


def _dataset_facts(
    root: Path, name: str, layout: DatasetLayout, project: str | None, previous: dict | None
) -> dict:
    facts: dict[str, Any] = {"ground_truth": layout.ground_truth or legacy_ground_truth(root, name)}
    if previous is None or previous.get("origin") == "scan" or previous.get("project") is None:
        # A dataset only the folder knows follows setup.json's default project as it changes;
        # a person picks another one by naming the dataset in setup.json (the viewer does so).
        facts["project"] = project
    if layout.volume is None:
        facts.update(
            state="error",
            fingerprint=None,
            error=f"{layout.searched}: no image files (a multi-page TIFF or a folder of "
            "TIFF or PNG slices)",
        )
        return facts
    facts.update(dataset_facts(root, layout.volume, previous=previous))
    return facts


def _find_models(root: Path, problems: list[InputError]) -> Iterator[_Found]:
    for entry in _entries(_top_folder(root, MODELS_DIR, problems)):
        if entry.is_dir() and os.path.isfile(os.path.join(entry.path, MODEL_WEIGHTS)):
            name, location = entry.name, join(MODELS_DIR, entry.name, MODEL_WEIGHTS)
        elif entry.is_file() and entry.name.endswith(MODEL_SUFFIX):
            name, location = entry.name[: -len(MODEL_SUFFIX)], join(MODELS_DIR, entry.name)
        else:
            continue
        yield _Found(
            {"name": name},
            location,
            _probe_with_previous(model_facts, root, location),
        )


def _find_segmentations(root: Path, problems: list[InputError]) -> Iterator[_Found]:
    for dataset_entry in _entries(_top_folder(root, SEGMENTATIONS_DIR, problems)):
        if not dataset_entry.is_dir():
            continue
        for entry in _entries(Path(dataset_entry.path)):
            # labels/ is ground truth in the older layout, registered with its dataset
            if not entry.is_dir() or entry.name == LABELS_DIR:
                continue
            folder = join(SEGMENTATIONS_DIR, dataset_entry.name, entry.name)
            try:
                location = segmentation_volume_location(root, folder)
            except InputError as exc:
                problems.append(InputError(exc.reason, source=folder))
                continue
            if location is None:
                continue  # nothing written yet
            yield _Found(
                {"dataset": dataset_entry.name, "name": entry.name},
                location,
                partial(_segmentation_facts, root, location, Path(entry.path)),
            )


def _segmentation_facts(root: Path, location: str, folder: Path, previous: dict | None) -> dict:
    facts = segmentation_facts(root, location, previous=previous)
    model = _side_file_value(folder / SEGMENTATION_CARD, "model")
    if isinstance(model, str):
        facts["model"] = model
    return facts


def _find_annotations(catalog: Catalog, root: Path, problems: list[InputError]) -> Iterator[_Found]:
    for dataset_entry in _entries(_top_folder(root, ANNOTATIONS_DIR, problems)):
        if not dataset_entry.is_dir():
            continue
        dataset = dataset_entry.name
        base = join(ANNOTATIONS_DIR, dataset)
        if os.path.isfile(os.path.join(dataset_entry.path, LEGACY_ANNOTATIONS)):
            # annotations/<dataset>/annotations.json gets a folder of its own, named by its stem
            import_legacy_file(
                catalog,
                root,
                dataset,
                join(base, LEGACY_ANNOTATIONS),
                join(base, Path(LEGACY_ANNOTATIONS).stem),
                problems,
            )
        for entry in _entries(Path(dataset_entry.path)):
            if not entry.is_dir():
                continue
            location = join(base, entry.name)
            folder = Path(entry.path)
            if (folder / LEGACY_ANNOTATIONS).is_file():
                import_legacy_file(
                    catalog, root, dataset, join(location, LEGACY_ANNOTATIONS), location, problems
                )
            if not (folder / ANNOTATION_META).is_file() and not any(
                ANNOTATION_SLICE.match(n) for n in os.listdir(folder)
            ):
                continue  # not an annotation (yet)
            yield _Found(
                {"dataset": dataset, "name": entry.name},
                location,
                _probe_with_previous(annotation_facts, root, location),
            )


# -- applying -------------------------------------------------------------------------------


def _apply(
    catalog: Catalog,
    table: str,
    found: Iterable[_Found],
    report: CatalogReport,
    problems: list[InputError],
    *,
    gone_reason: str = "no longer in the data folder",
    forget: Callable[[dict], bool] | None = None,
) -> None:
    """Upsert what was found; mark what the scan registered before but did not find missing.

    A location that setup.json owns is its reconciler's business; one the UI owns gets fresh
    facts but keeps its name and origin. A name already taken by either is a problem. Rows
    already missing and still not found are forgotten where ``forget(row)`` says so.
    """
    rows = _ROW_LISTS[table](catalog)
    by_key = {entity_key(table, row): row for row in rows}
    owned = {row["location"]: row for row in rows if row["origin"] != "scan" and row["location"]}
    records: list[dict] = []
    seen: dict[tuple, str] = {}
    for item in found:
        key = tuple(item.key.values())
        owner = owned.get(item.location)
        if owner is not None:
            if owner["origin"] == "ui":
                facts = _facts_or_problem(item, owner, problems)
                if facts is not None:
                    records.append({**_key_fields(table, owner), **facts})
            seen[entity_key(table, owner)] = item.location
            continue
        previous = by_key.get(key)
        if previous is not None and previous["origin"] != "scan":
            problems.append(
                InputError(
                    f"name {'/'.join(key)!r} is already used by {previous['location']} (from "
                    f"{previous['origin']}); rename one of them",
                    source=item.location,
                )
            )
            continue
        if key in seen:
            problems.append(
                InputError(
                    f"name {'/'.join(key)!r} is already used by {seen[key]}; rename one of them",
                    source=item.location,
                )
            )
            continue
        facts = _facts_or_problem(item, previous, problems)
        if facts is None:
            continue
        seen[key] = item.location
        records.append({**item.key, "location": item.location, "origin": "scan", **facts})
    report.add_counts(table, catalog.upsert_many(table, records))
    absent = [row for row in rows if entity_key(table, row) not in seen]
    gone = [
        entity_key(table, row)
        for row in absent
        if row["state"] != "missing"
        and (row["origin"] == "scan" or _vanished_ui_row(catalog.root, row))
    ]
    if gone:
        report.tally(table, "missing", catalog.mark_missing_many(table, gone, reason=gone_reason))
    if forget is not None:
        stale = [entity_key(table, row) for row in absent if forget(row)]
        if stale and catalog.forget_many(table, stale):
            names = ", ".join("/".join(key) for key in stale)
            report.notes.append(f"forgot {table} gone from the data folder: {names}")


def _facts_or_problem(
    item: _Found, previous: dict | None, problems: list[InputError]
) -> dict | None:
    """Probe one thing; a location that leads out of the data folder is a problem, not a row."""
    try:
        return item.facts(previous)
    except InputError as exc:
        problems.append(InputError(exc.reason, source=item.location))
        return None


def _vanished_ui_row(root: Path, row: dict) -> bool:
    """A UI row is missing once its files were seen (it has a fingerprint) and are gone now.

    One that was never seen may be output a job has not written yet, so it is left alone.
    """
    if row["origin"] != "ui" or not row.get("fingerprint") or not row.get("location"):
        return False
    try:
        return not resolve_inside(root, row["location"]).exists()
    except InputError:
        return True


def _key_fields(table: str, row: dict) -> dict:
    return dict(
        zip(
            ("dataset", "name") if table in ("segmentations", "annotations") else ("name",),
            entity_key(table, row),
        )
    )


_ROW_LISTS: dict[str, Callable[[Catalog], list[dict]]] = {
    "datasets": Catalog.datasets,
    "models": Catalog.models,
    "segmentations": Catalog.segmentations,
    "annotations": Catalog.annotations,
}


def _side_file_value(path: Path, key: str) -> Any:
    """One value from a small JSON side file (segmentation.json), or None if unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data.get(key) if isinstance(data, dict) else None

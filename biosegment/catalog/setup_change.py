"""What a change made in the UI does to the parsed ``setup.json``: merge, never replace.

Only the keys a change gives are set; everything else stays as it was: the dataset entry's other
keys, the project's other keys, and each class's keys beyond id, name and colour. A change that
touches only the project leaves the dataset entry alone (none is created); a change that touches
only the dataset leaves the project alone. A dataset that ``setup.json`` does not declare yet
(dropped into ``EM/``) gets an entry that points at the file or folder the scan found, so a
single-file dataset such as ``EM/fib-drop.tif`` keeps its file. A change never adds a
reference to something that does not exist: a project not in the file (unless the change
describes it, which adds it) or a model the data folder does not hold.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from biosegment.catalog.setup_file import choose_default_project, normalise_location
from biosegment.errors import InputError
from biosegment.folder_names import EM_DIR

__all__ = ["apply_change", "declared_project", "project_titles", "find_titled"]


def find_titled(items: Any, title: str) -> dict | None:
    """The entry of the list ``items`` whose title is ``title`` (None: no such entry)."""
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("title") == title:
            return item
    return None


def project_titles(data: dict[str, Any]) -> list[str]:
    """The projects ``setup.json`` lists, in its order."""
    projects = data.get("projects")
    return [
        p["title"]
        for p in (projects if isinstance(projects, list) else [])
        if isinstance(p, dict) and isinstance(p.get("title"), str) and p["title"].strip()
    ]


def declared_project(data: dict[str, Any], dataset: str) -> str | None:
    """The project ``dataset`` belongs to: its entry's, else the default project (which every
    dataset that names none joins, as the daemon reads the file)."""
    entry = find_titled(data.get("datasets"), dataset) or {}
    stated = entry.get("project")
    if isinstance(stated, str) and stated.strip():
        return stated
    named = data.get("default_project")
    return choose_default_project(
        named if isinstance(named, str) else None,
        [
            (title, bool((find_titled(data.get("projects"), title) or {}).get("classes")))
            for title in project_titles(data)
        ],
    )


def _listed(data: dict, key: str) -> list:
    if not isinstance(data.get(key), list):
        data[key] = []  # null or absent: the older format allowed both
    return data[key]


def _found_location(data: dict, dataset: str, found_at: str | None) -> str | None:
    """The ``location`` a new entry needs to point where the scan found ``dataset``: the file
    or folder directly under the EM folder that holds it. None when the default
    (``<EM>/<title>``) already points there."""
    if not found_at:
        return None
    em = normalise_location(data.get("EM_location") or EM_DIR)
    found = normalise_location(found_at)
    if found.startswith(em + "/"):
        found = f"{em}/{found[len(em) + 1 :].split('/')[0]}"
    return None if found == f"{em}/{dataset}" else found


def _dataset_entry(data: dict, dataset: str, found_at: str | None) -> dict:
    entries = _listed(data, "datasets")
    entry = find_titled(entries, dataset)
    if entry is None:
        entry = {"title": dataset}
        location = _found_location(data, dataset, found_at)
        if location is not None:
            entry["location"] = location
        entries.append(entry)
    return entry


def _merged_classes(old: Any, new: list[dict]) -> list[dict]:
    """``new`` classes, each keeping the keys beyond id, name and colour it had before (and
    ``objects`` unless the change sets it)."""
    listed = old if isinstance(old, list) else []
    before = {c["id"]: c for c in listed if isinstance(c, dict) and isinstance(c.get("id"), int)}
    merged = []
    for spec in new:
        kept = dict(before.get(int(spec["id"]), {}))
        kept.update(id=int(spec["id"]), name=str(spec["name"]), color=str(spec["color"]))
        if isinstance(spec.get("objects"), bool):
            if spec["objects"]:
                kept["objects"] = True
            else:
                kept.pop("objects", None)  # the default: not counted as objects
        merged.append(kept)
    return merged


def _check_project_exists(data: dict, project: str, describes_it: bool) -> None:
    if describes_it or project in project_titles(data):
        return
    known = ", ".join(repr(t) for t in project_titles(data)) or "none"
    raise InputError(
        f"project {project!r} is not in setup.json (its projects: {known}); "
        "give its classes to add it",
        where="project",
    )


def apply_change(
    data: dict[str, Any],
    *,
    dataset: str,
    found_at: str | None = None,
    project: str | None = None,
    classes: list[dict] | None = None,
    default_model: str | None = None,
    voxel_size: list[float] | None = None,
    check_model: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """A copy of ``data`` with the change: only the keys given are set (``""`` clears).

    ``found_at`` is the catalog's location of ``dataset``, used only when a new entry is made.
    ``check_model`` is called with a default model the change sets anew; it raises when that
    model cannot be used. Raises :class:`InputError` naming the field for a reference to a
    project that does not exist.
    """
    data = copy.deepcopy(data)
    describes_project = classes is not None or default_model is not None
    if project:
        _check_project_exists(data, project, describes_project)
    if project is not None or voxel_size is not None:
        entry = _dataset_entry(data, dataset, found_at)
        if voxel_size is not None:
            if voxel_size:
                entry["voxel_size"] = [float(v) if v % 1 else int(v) for v in voxel_size]
            else:
                entry.pop("voxel_size", None)
        if project is not None:
            if project:
                entry["project"] = project
            else:
                entry.pop("project", None)
    if not describes_project:
        return data
    target = project if project is not None else declared_project(data, dataset)
    if not target:
        raise InputError(
            "classes and a default model belong to a project: name one", where="project"
        )
    described = find_titled(_listed(data, "projects"), target)
    if described is None:
        described = {"title": target}
        data["projects"].append(described)
    if classes is not None:
        described["classes"] = _merged_classes(described.get("classes"), classes)
    if default_model is not None and default_model != described.get("default_model"):
        if default_model:
            if check_model is not None:
                check_model(default_model)
            described["default_model"] = default_model
        else:
            described.pop("default_model", None)
    return data

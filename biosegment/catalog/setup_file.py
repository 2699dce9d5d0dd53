"""Read and validate ``setup.json``, the data folder's optional declarative description (SPEC 3).

Everything the old stack accepted stays valid: missing keys, ``null`` in place of a list, unknown
extra keys (ignored). New optional keys are ``classes``, ``default_model`` and ``auto_segment`` per
project, ``voxel_size`` (nm, z y x) and ``project`` per dataset, a global ``auto_segment``, and
``default_project``: the project entries and dropped datasets join when they name none (it must
be one of ``projects``; see :attr:`SetupDocument.default_project` for the rule without it).
Validation is structural and never touches image files: bad JSON is reported with its line and
column, everything else with the key that is wrong (``datasets[2].location``). Every location is
checked with :func:`biosegment.paths.resolve_inside` and stored as a normalised relative path.
:func:`validate_setup` returns all problems at once; :func:`load_setup` raises the first.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biosegment.errors import PathEscapeError, SetupError
from biosegment.folder_names import EM_DIR, SETUP_FILE
from biosegment.paths import resolve_inside
from biosegment.volumes import FILE_TYPES  # the volume package owns the list of formats

__all__ = [
    "SetupClass",
    "SetupProject",
    "SetupDataset",
    "SetupModel",
    "SetupSegmentation",
    "SetupAnnotation",
    "SetupDocument",
    "choose_default_project",
    "load_setup",
    "validate_setup",
    "check_setup_data",
    "normalise_location",
]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True, slots=True)
class SetupClass:
    id: int
    name: str
    color: str | None = None
    #: segmentations count this class's objects (instances, a table) unless a job says not
    objects: bool = False

    def as_dict(self) -> dict:
        entry: dict = {"id": self.id, "name": self.name, "color": self.color}
        if self.objects:
            entry["objects"] = True
        return entry


@dataclass(frozen=True, slots=True)
class SetupProject:
    title: str
    where: str  #: the key it came from, e.g. ``projects[0]``
    classes: tuple[SetupClass, ...] | None = None
    default_model: str | None = None
    auto_segment: bool | None = None  #: None: follow the document's switch


@dataclass(frozen=True, slots=True)
class SetupDataset:
    title: str
    where: str
    location: str  #: the dataset folder (or file), relative
    file_type: str | None = None
    resolution: tuple[int, ...] | None = None  #: x, y, z in voxels, as the old stack wrote it
    key: str | None = None  #: the array inside an HDF5/Zarr/N5 container
    voxel_size: tuple[float, float, float] | None = None
    project: str | None = None

    @property
    def catalog_key(self) -> tuple[str, ...]:
        """The key of the catalog row it declares: its name."""
        return (self.title,)


@dataclass(frozen=True, slots=True)
class SetupModel:
    title: str
    where: str
    location: str | None = None  #: None: looked up under ``models/`` by title
    project: str | None = None

    @property
    def catalog_key(self) -> tuple[str, ...]:
        """The key of the catalog row it declares: its name."""
        return (self.title,)


@dataclass(frozen=True, slots=True)
class SetupSegmentation:
    title: str
    where: str
    dataset: str
    location: str
    model: str | None = None

    @property
    def catalog_key(self) -> tuple[str, ...]:
        """The key of the catalog row it declares: its dataset and name."""
        return (self.dataset, self.title)


@dataclass(frozen=True, slots=True)
class SetupAnnotation:
    title: str
    where: str
    dataset: str
    location: str

    @property
    def catalog_key(self) -> tuple[str, ...]:
        """The key of the catalog row it declares: its dataset and name."""
        return (self.dataset, self.title)


#: An entry of ``setup.json`` that declares a catalog row of its own table.
SetupEntry = SetupDataset | SetupModel | SetupSegmentation | SetupAnnotation


@dataclass(frozen=True, slots=True)
class SetupDocument:
    """A validated ``setup.json``."""

    path: Path
    em_location: str = EM_DIR
    projects: tuple[SetupProject, ...] = ()
    datasets: tuple[SetupDataset, ...] = ()
    models: tuple[SetupModel, ...] = ()
    segmentations: tuple[SetupSegmentation, ...] = ()
    annotations: tuple[SetupAnnotation, ...] = ()
    auto_segment: bool = False
    named_default_project: str | None = None  #: the ``default_project`` key, when given

    @property
    def default_project(self) -> str | None:
        """The project entries that name none, and datasets dropped into the folder, join.

        ``default_project`` when the file names one; otherwise the only project with classes
        (a dataset there can be annotated and segmented with its classes and default model);
        otherwise the first project listed, as the older BioSegment did.
        """
        return choose_default_project(
            self.named_default_project, [(p.title, bool(p.classes)) for p in self.projects]
        )


def choose_default_project(named: str | None, projects: list[tuple[str, bool]]) -> str | None:
    """The rule of :attr:`SetupDocument.default_project`, on ``(title, has classes)`` pairs.

    Shared with the UI's setup editor, which reads the file without validating it first.
    """
    if named is not None and any(title == named for title, _ in projects):
        return named
    with_classes = [title for title, has_classes in projects if has_classes]
    if len(with_classes) == 1:
        return with_classes[0]
    return projects[0][0] if projects else None


def normalise_location(text: str) -> str:
    """``EM\\\\a/./b/`` -> ``EM/a/b``: one spelling per place, so locations compare equal."""
    return "/".join(p for p in str(text).replace("\\", "/").split("/") if p not in ("", "."))


def load_setup(root: Path) -> SetupDocument | None:
    """Return the validated ``setup.json`` of ``root``, or None when there is none.

    :raises SetupError: naming the file and the line/column or key of the first problem.
    """
    document, problems = validate_setup(root)
    if problems:
        raise problems[0]
    return document


def validate_setup(root: Path) -> tuple[SetupDocument | None, list[SetupError]]:
    """Validate ``<root>/setup.json``: (document, []) when valid, (None, problems) when not.

    A folder without ``setup.json`` gives ``(None, [])``.
    """
    path = Path(root) / SETUP_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, []
    except OSError as exc:
        return None, [SetupError(f"cannot read: {exc.strerror or exc}", source=SETUP_FILE)]
    try:
        text = raw.decode("utf-8-sig")  # Windows editors like to add a byte-order mark
    except UnicodeDecodeError as exc:
        return None, [SetupError("not UTF-8 text", source=SETUP_FILE, where=f"byte {exc.start}")]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [
            SetupError(
                f"invalid JSON: {exc.msg}",
                source=SETUP_FILE,
                where=f"line {exc.lineno}, column {exc.colno}",
            )
        ]
    except RecursionError:  # thousands of nested brackets exhaust the parser's stack
        return None, [
            SetupError("invalid JSON: nested too deeply", source=SETUP_FILE, where="(top level)")
        ]
    return check_setup_data(root, data)


def check_setup_data(root: Path, data: Any) -> tuple[SetupDocument | None, list[SetupError]]:
    """Validate already-parsed ``setup.json`` content (see :func:`validate_setup`)."""
    checker = _Checker(Path(root))
    document = checker.document(data, Path(root) / SETUP_FILE)
    if checker.problems:
        return None, checker.problems
    return document, []


class _Checker:
    """Walks the parsed JSON, collecting every problem instead of stopping at the first."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[SetupError] = []

    def fail(self, where: str, reason: str) -> None:
        self.problems.append(SetupError(reason, source=SETUP_FILE, where=where))

    def document(self, data: Any, path: Path) -> SetupDocument | None:
        if not isinstance(data, dict):
            self.fail("(top level)", f"expected a JSON object, got {_type_name(data)}")
            return None
        em = self.location(data.get("EM_location", EM_DIR), "EM_location", required=False) or EM_DIR
        projects = [self.project(e, w) for e, w in self.entries(data, "projects")]
        datasets = [self.dataset(e, w, em, FILE_TYPES) for e, w in self.entries(data, "datasets")]
        models = [self.model(e, w) for e, w in self.entries(data, "models")]
        segmentations = [self.segmentation(e, w) for e, w in self.entries(data, "segmentations")]
        annotations = [self.annotation(e, w) for e, w in self.entries(data, "annotations")]
        self.unique("projects", [(i.title, i.where) for i in projects if i is not None])
        self.unique("datasets", [(i.title, i.where) for i in datasets if i is not None])
        self.unique("models", [(i.title, i.where) for i in models if i is not None])
        for kind, items in (("segmentations", segmentations), ("annotations", annotations)):
            self.unique(kind, [(i.catalog_key, i.where) for i in items if i is not None])
        auto_segment = self.boolean(data.get("auto_segment"), "auto_segment")
        default_project = self.default_project(data, [p.title for p in projects if p is not None])
        return SetupDocument(
            path=path,
            em_location=em,
            projects=tuple(p for p in projects if p is not None),
            datasets=tuple(d for d in datasets if d is not None),
            models=tuple(m for m in models if m is not None),
            segmentations=tuple(s for s in segmentations if s is not None),
            annotations=tuple(a for a in annotations if a is not None),
            auto_segment=bool(auto_segment),
            named_default_project=default_project,
        )

    def default_project(self, data: dict, titles: list[str]) -> str | None:
        """The ``default_project`` key: a title that ``projects`` lists."""
        name = self.text(data.get("default_project"), "default_project")
        if name is None or name in titles:
            return name
        listed = ", ".join(repr(t) for t in titles) or "none"
        self.fail(
            "default_project",
            f"names the project {name!r}, which projects does not list (listed: {listed})",
        )
        return None

    def entries(self, data: dict, key: str) -> Iterator[tuple[dict, str]]:
        value = data.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.fail(key, f"expected a list or null, got {_type_name(value)}")
            return
        for index, entry in enumerate(value):
            where = f"{key}[{index}]"
            if not isinstance(entry, dict):
                self.fail(where, f"expected an object, got {_type_name(entry)}")
                continue
            yield entry, where

    def unique(self, kind: str, keyed: list[tuple[Any, str]]) -> None:
        first_seen: dict[Any, str] = {}
        for key, where in keyed:
            if key in first_seen:
                self.fail(
                    f"{where}.title",
                    f"duplicate {kind[:-1]} title {key!r} (also at {first_seen[key]})",
                )
            else:
                first_seen[key] = where

    def project(self, entry: dict, where: str) -> SetupProject | None:
        title = self.text(entry.get("title"), f"{where}.title", required=True)
        classes = self.classes(entry.get("classes"), f"{where}.classes")
        default_model = self.text(entry.get("default_model"), f"{where}.default_model")
        auto_segment = self.boolean(entry.get("auto_segment"), f"{where}.auto_segment")
        if title is None:
            return None
        return SetupProject(
            title=title,
            where=where,
            classes=classes,
            default_model=default_model,
            auto_segment=auto_segment,
        )

    def dataset(
        self, entry: dict, where: str, em: str, file_types: tuple[str, ...]
    ) -> SetupDataset | None:
        title = self.text(entry.get("title"), f"{where}.title", required=True)
        if "location" in entry and entry["location"] is not None:
            location = self.location(entry["location"], f"{where}.location")
        elif title is not None:
            location = self.location(f"{em}/{title}", f"{where}.title")
        else:
            location = None
        file_type = self.text(entry.get("file_type"), f"{where}.file_type")
        if file_type is not None and file_type not in file_types:
            self.fail(
                f"{where}.file_type",
                f"unknown file_type {file_type!r}; expected one of {', '.join(file_types)}",
            )
        resolution = self.numbers(entry.get("resolution"), f"{where}.resolution", integers=True)
        voxel_size = self.numbers(entry.get("voxel_size"), f"{where}.voxel_size", length=3)
        project = self.text(entry.get("project"), f"{where}.project")
        key = self.text(entry.get("key"), f"{where}.key")
        if key is not None and ".." in key.replace("\\", "/").split("/"):
            self.fail(f"{where}.key", f"key {key!r} must not contain '..'")
            key = None
        if title is None or location is None:
            return None
        return SetupDataset(
            title=title,
            where=where,
            location=location,
            file_type=file_type,
            resolution=resolution,
            voxel_size=voxel_size,
            project=project,
            key=key,
        )

    def model(self, entry: dict, where: str) -> SetupModel | None:
        title = self.text(entry.get("title"), f"{where}.title", required=True)
        location = self.location(entry.get("location"), f"{where}.location", required=False)
        project = self.text(entry.get("project"), f"{where}.project")
        if title is None:
            return None
        return SetupModel(title=title, where=where, location=location, project=project)

    def segmentation(self, entry: dict, where: str) -> SetupSegmentation | None:
        title = self.text(entry.get("title"), f"{where}.title", required=True)
        dataset = self.text(entry.get("dataset"), f"{where}.dataset", required=True)
        model = self.text(entry.get("model"), f"{where}.model")
        location = self.location(entry.get("location"), f"{where}.location", required=False)
        if title is None or dataset is None:
            return None
        if location is None:
            location = self.location(f"segmentations/{dataset}/{title}", f"{where}.title")
            if location is None:
                return None
        return SetupSegmentation(
            title=title, where=where, dataset=dataset, location=location, model=model
        )

    def annotation(self, entry: dict, where: str) -> SetupAnnotation | None:
        title = self.text(entry.get("title"), f"{where}.title", required=True)
        dataset = self.text(entry.get("dataset"), f"{where}.dataset", required=True)
        location = self.location(entry.get("location"), f"{where}.location", required=False)
        if title is None or dataset is None:
            return None
        if location is None:
            location = self.location(f"annotations/{dataset}/{title}", f"{where}.title")
            if location is None:
                return None
        return SetupAnnotation(title=title, where=where, dataset=dataset, location=location)

    # -- values -----------------------------------------------------------------------------

    def text(self, value: Any, where: str, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.fail(where, "required")
            return None
        if not isinstance(value, str):
            self.fail(where, f"expected a string, got {_type_name(value)}")
            return None
        if not value.strip():
            if required:
                self.fail(where, "must not be empty")
            return None
        return value

    def boolean(self, value: Any, where: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self.fail(where, f"expected true or false, got {_type_name(value)}")
        return None

    def location(self, value: Any, where: str, *, required: bool = True) -> str | None:
        text = self.text(value, where, required=required)
        if text is None:
            return None
        try:
            resolve_inside(self.root, text, source=SETUP_FILE, where=where)
        except PathEscapeError as exc:
            self.problems.append(SetupError(exc.reason, source=SETUP_FILE, where=where))
            return None
        return normalise_location(text)

    def numbers(
        self, value: Any, where: str, *, integers: bool = False, length: int | None = None
    ) -> tuple | None:
        if value is None:
            return None
        if not isinstance(value, list) or not value or (length and len(value) != length):
            size = f"{length} " if length else ""
            self.fail(where, f"expected a list of {size}positive numbers, got {_describe(value)}")
            return None
        result = []
        for index, number in enumerate(value):
            ok = (
                isinstance(number, (int, float))
                and not isinstance(number, bool)
                and math.isfinite(number)
                and number > 0
            )
            if ok and integers and float(number) != int(number):
                ok = False
            if not ok:
                kind = "a positive whole number" if integers else "a positive number"
                self.fail(f"{where}[{index}]", f"expected {kind}, got {_describe(number)}")
                return None
            result.append(int(number) if integers else float(number))
        return tuple(result)

    def classes(self, value: Any, where: str) -> tuple[SetupClass, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail(where, f"expected a list of classes, got {_type_name(value)}")
            return None
        result, seen = [], set()
        for index, entry in enumerate(value):
            here = f"{where}[{index}]"
            if not isinstance(entry, dict):
                self.fail(here, f"expected an object, got {_type_name(entry)}")
                continue
            class_id = entry.get("id")
            # 255 is "unlabeled" in every label volume, so no class may use it.
            if (
                isinstance(class_id, bool)
                or not isinstance(class_id, int)
                or not 0 <= class_id <= 254
            ):
                self.fail(
                    f"{here}.id", f"expected a whole number 0..254, got {_describe(class_id)}"
                )
                continue
            if class_id in seen:
                self.fail(f"{here}.id", f"duplicate class id {class_id}")
                continue
            seen.add(class_id)
            name = self.text(entry.get("name"), f"{here}.name", required=True)
            color = self.text(entry.get("color"), f"{here}.color")
            if color is not None and not _COLOR.match(color):
                self.fail(f"{here}.color", f"expected a colour like '#00c0ff', got {color!r}")
                color = None
            objects = self.boolean(entry.get("objects"), f"{here}.objects")
            if name is not None:
                result.append(
                    SetupClass(id=class_id, name=name, color=color, objects=bool(objects))
                )
        return tuple(result)


def _type_name(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "true/false",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."

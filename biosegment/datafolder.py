"""Create a data folder's layout, its first ``setup.json``, and the demo content.

``init_data_folder`` is what ``biosegment init`` and the first ``make run`` call. It only ever
adds: an existing ``setup.json``, dataset or model is left exactly as it is.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from biosegment.config import CONFIG_FILE_NAME, render_config
from biosegment.folder_names import (
    EM_DIR,
    LABELS_DIR,
    LAYOUT,
    MODEL_CARD,
    MODEL_WEIGHTS,
    MODELS_DIR,
    RAW_DIR,
    SETUP_FILE,
    STATE_DIR,
)
from biosegment.state_folder import private_state_dir

__all__ = [
    "init_data_folder",
    "install_demo",
    "InitReport",
    "LAYOUT",
    "DEMO_DATASET",
    "DEMO_MODEL",
    "DEMO_PROJECT",
]


DEMO_DATASET = "isbi2012-demo"
DEMO_MODEL = "demo-membrane"
DEMO_PROJECT = "Demo"
DEMO_CLASSES = [{"id": 1, "name": "membrane", "color": "#ff3030"}]

_EMPTY_SETUP = {
    "EM_location": EM_DIR,
    "projects": [{"title": "Main project"}],
    "models": [],
    "datasets": [],
    "segmentations": None,
    "annotations": None,
}


@dataclass
class InitReport:
    root: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    config_file: Path | None = None

    def as_dict(self) -> dict:
        return {
            "root": str(self.root),
            "created": self.created,
            "kept": self.kept,
            "config_file": None if self.config_file is None else str(self.config_file),
        }


def _write_json_atomic(path: Path, document: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def init_data_folder(root: Path, *, demo: bool = False, write_config: bool = True) -> InitReport:
    """Create ``root`` with the standard layout and a ``setup.json``; add the demo if asked.

    ``write_config`` puts a ``biosegment.toml`` pointing at the folder itself inside it, so that
    ``biosegment --config <root>/biosegment.toml ...`` works right away.
    """
    root = Path(root).expanduser().resolve()
    report = InitReport(root=root)
    root.mkdir(parents=True, exist_ok=True)
    for name in LAYOUT:
        folder = root / name
        (report.kept if folder.is_dir() else report.created).append(name + "/")
        if name == STATE_DIR:
            private_state_dir(root)
        else:
            folder.mkdir(exist_ok=True)
    setup = root / SETUP_FILE
    if setup.exists():
        report.kept.append(SETUP_FILE)
    else:
        _write_json_atomic(setup, _EMPTY_SETUP)
        report.created.append(SETUP_FILE)
    if write_config:
        config_file = root / CONFIG_FILE_NAME
        if config_file.exists():
            report.kept.append(CONFIG_FILE_NAME)
        else:
            config_file.write_text(render_config("."), encoding="utf-8")
            report.created.append(CONFIG_FILE_NAME)
        report.config_file = config_file
    if demo:
        install_demo(root, report)
    return report


def _demo_files():
    return resources.files("biosegment") / "demo"


def _copy_resource(source, target: Path, report: InitReport, root: Path) -> None:
    rel = target.relative_to(root).as_posix()
    if target.exists():
        report.kept.append(rel)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    with source.open("rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(tmp, target)
    report.created.append(rel)


def install_demo(root: Path, report: InitReport | None = None) -> InitReport:
    """Add the demo dataset (ISBI 2012 slices with ground truth) and the demo model (the
    general membrane model, trained on ssTEM and FIB-SEM), which is the demo project's default."""
    root = Path(root).resolve()
    report = report or InitReport(root=root)
    demo = _demo_files()
    dataset_dir = root / EM_DIR / DEMO_DATASET
    _copy_resource(
        demo / "isbi2012" / "raw.tif", dataset_dir / RAW_DIR / f"{DEMO_DATASET}.tif", report, root
    )
    _copy_resource(
        demo / "isbi2012" / "labels.tif", dataset_dir / LABELS_DIR / "labels.tif", report, root
    )
    _copy_resource(demo / "isbi2012" / "README.md", dataset_dir / "README.md", report, root)
    model_source = demo / "model"
    has_model = model_source.is_dir() and (model_source / MODEL_WEIGHTS).is_file()
    if has_model:
        # The card, and the model's README and data licence (CC BY asks for attribution).
        for name in (MODEL_WEIGHTS, MODEL_CARD, "README.md", "NEUROPROOF_LICENSE.txt"):
            if (model_source / name).is_file():
                _copy_resource(
                    model_source / name, root / MODELS_DIR / DEMO_MODEL / name, report, root
                )
    _add_demo_to_setup(root / SETUP_FILE, has_model=has_model)
    return report


def _add_demo_to_setup(setup_path: Path, *, has_model: bool) -> None:
    """Declare the demo project, dataset and model in setup.json without touching other entries."""
    if setup_path.exists():
        try:
            document = json.loads(setup_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return  # an invalid setup.json is the user's; the folder scan still finds the demo
        if not isinstance(document, dict):
            return
    else:
        document = dict(_EMPTY_SETUP)
    projects = [p for p in (document.get("projects") or []) if isinstance(p, dict)]
    if not any(p.get("title") == DEMO_PROJECT for p in projects):
        project = {"title": DEMO_PROJECT, "classes": DEMO_CLASSES}
        if has_model:
            project["default_model"] = DEMO_MODEL
        projects.append(project)
    document["projects"] = projects
    others_have_classes = any(p.get("classes") for p in projects if p.get("title") != DEMO_PROJECT)
    if "default_project" not in document and not others_have_classes:
        # Datasets dropped into EM/ join the demo project, whose model and classes fit EM
        # membranes, rather than an empty project without classes; said in the file, where a
        # person can change it. A lab's own project with classes is left to be the default.
        document = _with_key_after(document, "EM_location", "default_project", DEMO_PROJECT)
    datasets = [d for d in (document.get("datasets") or []) if isinstance(d, dict)]
    if not any(d.get("title") == DEMO_DATASET for d in datasets):
        datasets.append(
            {
                "title": DEMO_DATASET,
                "resolution": [512, 512, 5],
                "file_type": "tif3d",
                "voxel_size": [50, 4, 4],
                "project": DEMO_PROJECT,
            }
        )
    document["datasets"] = datasets
    if has_model:
        models = [m for m in (document.get("models") or []) if isinstance(m, dict)]
        if not any(m.get("title") == DEMO_MODEL for m in models):
            models.append(
                {
                    "title": DEMO_MODEL,
                    "location": f"{MODELS_DIR}/{DEMO_MODEL}/{MODEL_WEIGHTS}",
                    "project": DEMO_PROJECT,
                }
            )
        document["models"] = models
    document.setdefault("EM_location", EM_DIR)
    _write_json_atomic(setup_path, document)


def _with_key_after(document: dict, after: str, key: str, value) -> dict:
    """``document`` with ``key`` placed right after ``after`` (or first), for a readable file."""
    result: dict = {} if after in document else {key: value}
    for name, item in document.items():
        result[name] = item
        if name == after:
            result[key] = value
    return result

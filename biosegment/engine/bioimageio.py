"""Write and read bioimage.io model packages, so BioSegment models live in the Model Zoo too.

A package is a zip (or folder) with an ``rdf.yaml`` in the bioimage.io model format 0.5 and
the files it names: the weights in three formats (the state dict with the U-Net source file
that builds it, TorchScript and ONNX), a test input and the output the model computes for it,
a cover image and a README. The input's data description is the raw image (uint8 grey
values, batch, channel, [z,] y, x); its preprocessing scales it to [0, 1] as the model card
says (by 255, or between the image's 1st and 99th percentile) and ends by declaring float32,
what the network takes: format 0.5 otherwise casts the preprocessed tensor back to the raw
data type. The output is one logit per class, named after the model card's classes.
:func:`export_bioimageio` writes one.

:func:`import_bioimageio` goes the other way for any package whose ``pytorch_state_dict``
weights are a U-Net in the ``neuralnets`` key layout (ours, or the old stack's): it rebuilds
the network from the weights alone, checks that it reproduces the package's test output, and
saves it as a BioSegment model folder with a card (classes from the output's channel names).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import tempfile
import zipfile
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

from biosegment import __version__
from biosegment.engine import unet as unet_module
from biosegment.engine.bioimageio_package import (
    MAX_TEST_TENSOR_BYTES,
    MAX_WEIGHTS_BYTES,
    RDF_NAME,
    PackageFiles,
    source_of,
)
from biosegment.engine.checkpoint import infer_architecture
from biosegment.engine.export import export_onnx, export_torchscript, traceable
from biosegment.engine.intensity import percentile_normalisation
from biosegment.engine.model_card import DEFAULT_NORMALISATION, ModelCard, default_classes
from biosegment.engine.model_publish import (
    ModelExistsError,
    existing_model_paths,
    model_folder_name,
    publish_model,
)
from biosegment.engine.unet import UNet, size_multiple
from biosegment.errors import InputError, StateError

__all__ = [
    "export_bioimageio",
    "import_bioimageio",
    "read_package_rdf",
    "FORMAT_VERSION",
    "RDF_NAME",
]

#: The bioimage.io model format version written.
FORMAT_VERSION = "0.5.4"

_FILES = {
    "state_dict": "weights.pt",
    "architecture": "unet.py",
    "torchscript": "weights.torchscript.pt",
    "onnx": "weights.onnx",
    "test_input": "test_input.npy",
    "test_output": "test_output.npy",
    "sample_input": "sample_input.tif",
    "sample_output": "sample_output.tif",
    "cover": "cover.png",
    "documentation": "README.md",
    "card": "model.json",
}
_TEST_SIZE = 256
#: Memory the import's check may take to run the package's test input through the network.
TEST_RUN_BUDGET = 2**30
# float32 values alive per input voxel and first-level feature map during that run: at the
# full-size level the skip, the up-sampled map, their concatenation (two) and a convolution's
# output, plus one for the allocator's slack.
_ACTIVATIONS_PER_FEATURE_MAP = 6
# bioimage.io's scale_range divides by (high - low + eps); the same eps reproduces it exactly.
_SCALE_RANGE_EPS = 1e-6


def _yaml():
    try:
        import yaml
    except ImportError:
        raise InputError(
            "bioimage.io packages need PyYAML: pip install 'biosegment[export]'", where="format"
        ) from None
    return yaml


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _test_image(model: UNet, test_input: np.ndarray | None) -> np.ndarray:
    """A uint8 (batch, channel, [z,] y, x) test tensor cut to sizes the network accepts."""
    dims, multiple = model.config["dims"], size_multiple(model.config["levels"])
    if test_input is None:
        rng = np.random.default_rng(0)
        side = max(multiple, 64)
        shape = (side,) * dims
        image = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        image = np.asarray(test_input)
        if image.dtype != np.uint8:
            raise InputError(
                f"the test input must be uint8 (got {image.dtype})", where="test_input"
            )
        if image.ndim == 3 and dims == 2:
            image = image[image.shape[0] // 2]
        if image.ndim != dims:
            raise InputError(
                f"a {dims}-D model needs a {dims}-D test input, got shape {image.shape}",
                where="test_input",
            )
        limit = _TEST_SIZE if dims == 2 else 64
        sizes = [min(limit, n) // multiple * multiple for n in image.shape]
        if min(sizes) < multiple:
            raise InputError(
                f"the test input must be at least {multiple} pixels on every side",
                where="test_input",
            )
        starts = [(n - s) // 2 for n, s in zip(image.shape, sizes)]
        image = image[tuple(slice(a, a + s) for a, s in zip(starts, sizes))]
    return np.ascontiguousarray(image)[np.newaxis, np.newaxis]


def _scaled_input(image: np.ndarray, normalisation: dict) -> np.ndarray:
    """The test image as the network sees it, computed as the package's preprocessing does."""
    if normalisation.get("method") == "percentile":
        # One sample = one image: its own percentiles (BioSegment's per-volume scaling of a
        # 2-D model's slice), over every spatial axis, as ``scale_range`` without a reference tensor does.
        low, high = _percentiles(normalisation)
        values = image.astype(np.float64)
        lo, hi = np.percentile(values, [low, high])
        scaled = (values - lo) / (hi - lo + _SCALE_RANGE_EPS)
        return np.clip(scaled, 0.0, 1.0).astype(np.float32)
    return image.astype(np.float32) / np.float32(255.0)


def _percentiles(normalisation: dict) -> tuple[float, float]:
    return (
        float(normalisation.get("low_percentile", 1.0)),
        float(normalisation.get("high_percentile", 99.0)),
    )


def _preprocessing(normalisation: dict, dims: int) -> list[dict]:
    """bioimage.io preprocessing that scales raw uint8 as the card's ``normalisation`` says."""
    if normalisation.get("method") == "percentile":
        low, high = _percentiles(normalisation)
        scale = [
            # No reference tensor: the percentiles of each sample itself (format 0.5).
            {
                "id": "scale_range",
                "kwargs": {
                    "axes": list(("z", "y", "x")[-dims:]),
                    "min_percentile": low,
                    "max_percentile": high,
                    "eps": _SCALE_RANGE_EPS,
                },
            },
            {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}},
        ]
    else:
        scale = [{"id": "scale_linear", "kwargs": {"gain": 1.0 / 255.0, "offset": 0.0}}]
    # The closing ensure_dtype says what the network takes; without it format 0.5 appends a
    # cast back to the raw data's uint8 after the scaling.
    return [
        {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
        *scale,
        {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
    ]


def _logits(model: UNet, image: np.ndarray, normalisation: dict) -> np.ndarray:
    with torch.no_grad():
        scaled = torch.from_numpy(_scaled_input(image, normalisation))
        return traceable(model)(scaled).numpy().astype(np.float32)


def _cover(image: np.ndarray, labels: np.ndarray, classes: list[dict], path: Path) -> None:
    """A 2:1 picture: the test input beside its segmentation in the class colours."""

    plane = image[0, 0] if image.ndim == 4 else image[0, 0, image.shape[2] // 2]
    ids = labels[0] if labels.ndim == 3 else labels[0, labels.shape[1] // 2]
    palette = np.zeros((256, 3), np.uint8)
    for entry in classes:
        colour = str(entry.get("color") or "#808080")
        if len(colour) == 7 and colour.startswith("#"):
            palette[int(entry["id"]) % 256] = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    grey = np.repeat(plane[..., None], 3, axis=2)
    overlay = (0.5 * grey + 0.5 * palette[ids]).astype(np.uint8)
    picture = Image.fromarray(np.concatenate([grey, overlay], axis=1))
    picture.resize((512, 256)).save(path, format="PNG")


def _readme(card: ModelCard, config: dict) -> str:
    classes = ", ".join(f"{c['id']} {c.get('name', '')}".strip() for c in card.classes)
    return (
        f"# {card.name}\n\n"
        f"A {config['dims']}-D U-Net ({config['feature_maps']} feature maps, {config['levels']} "
        f"levels, {config['norm']} norm) trained with BioSegment to segment electron "
        "microscopy images.\n\n"
        f"- Classes: {classes}.\n"
        f"- Input: uint8 grey values, scaled to [0, 1] {_scaling_words(card.normalisation)}.\n"
        f"- Sizes: every spatial size a multiple of {size_multiple(config['levels'])}.\n"
        "- Output: one logit per class; the class id of a pixel is the argmax over channels.\n"
        "\nThe weights are also given as TorchScript and ONNX. `model.json` is the BioSegment "
        "model card (training data, parameters and metrics per epoch).\n"
        "\n# Validation\n\n"
        "The test output is what the network computed for the test input when the package was "
        "written; all three weight formats reproduce it. Metrics per training epoch, on the "
        "validation data named in `model.json`, are listed there.\n"
    )


def _scaling_words(normalisation: dict) -> str:
    if normalisation.get("method") == "percentile":
        low, high = _percentiles(normalisation)
        return (
            f"between the image's {low:g}th and {high:g}th percentile (clipped); BioSegment "
            "measures them on the whole volume"
        )
    return "by dividing by 255"


def _axes(
    dims: int, *, channel_names: list[str], size: dict | None, reference: str | None
) -> list[dict]:
    axes: list[dict] = [{"type": "batch"}, {"type": "channel", "channel_names": channel_names}]
    for name in ("z", "y", "x")[-dims:]:
        if reference is not None:
            axes.append(
                {"type": "space", "id": name, "size": {"tensor_id": reference, "axis_id": name}}
            )
        else:
            axes.append({"type": "space", "id": name, "size": dict(size or {})})
    return axes


def _describe(
    model: UNet,
    card: ModelCard,
    files: dict[str, Path],
    *,
    authors: list[dict],
    license_id: str,
    description: str | None,
) -> dict:
    config = model.config
    multiple = size_multiple(config["levels"])
    names = [str(c.get("name", c["id"])) for c in card.classes]
    digest = {key: _sha256(path) for key, path in files.items()}
    torch_version = torch.__version__.split("+")[0]
    rdf = {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": _zoo_name(card.name),
        "description": description
        or (f"U-Net segmenting electron microscopy into {', '.join(names)} (BioSegment)"),
        "authors": authors,
        "cite": [
            {
                "text": "Ronneberger, Fischer and Brox. U-Net: Convolutional Networks for "
                "Biomedical Image Segmentation. MICCAI 2015.",
                "doi": "10.1007/978-3-319-24574-4_28",
            }
        ],
        "license": license_id,
        "tags": [
            "electron-microscopy",
            "segmentation",
            "unet",
            f"{config['dims']}d",
            "pytorch",
            "biosegment",
        ],
        "documentation": _FILES["documentation"],
        "covers": [_FILES["cover"]],
        "attachments": [{"source": _FILES["card"], "sha256": digest["card"]}],
        "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "inputs": [
            {
                "id": "raw",
                "description": "electron microscopy image, uint8 grey values; the network "
                "takes them as float32 scaled to [0, 1] by the preprocessing",
                "axes": _axes(
                    config["dims"],
                    channel_names=["raw"],
                    size={"min": _smallest_input(config), "step": multiple},
                    reference=None,
                ),
                "test_tensor": {"source": _FILES["test_input"], "sha256": digest["test_input"]},
                "sample_tensor": {
                    "source": _FILES["sample_input"],
                    "sha256": digest["sample_input"],
                },
                "data": {"type": "uint8", "range": [0, 255]},
                "preprocessing": _preprocessing(card.normalisation, config["dims"]),
            }
        ],
        "outputs": [
            {
                "id": "logits",
                "description": "one logit per class; class ids are the argmax over channels",
                "axes": _axes(config["dims"], channel_names=names, size=None, reference="raw"),
                "test_tensor": {"source": _FILES["test_output"], "sha256": digest["test_output"]},
                "sample_tensor": {
                    "source": _FILES["sample_output"],
                    "sha256": digest["sample_output"],
                },
                "data": {"type": "float32"},
            }
        ],
        "weights": {
            "pytorch_state_dict": {
                "source": _FILES["state_dict"],
                "sha256": digest["state_dict"],
                "architecture": {
                    "source": _FILES["architecture"],
                    "sha256": digest["architecture"],
                    "callable": "UNet",
                    "kwargs": dict(config),
                },
                "pytorch_version": torch_version,
            },
            "torchscript": {
                "source": _FILES["torchscript"],
                "sha256": digest["torchscript"],
                "pytorch_version": torch_version,
                "parent": "pytorch_state_dict",
            },
            "onnx": {
                "source": _FILES["onnx"],
                "sha256": digest["onnx"],
                "opset_version": 17,
                "parent": "pytorch_state_dict",
            },
        },
        "config": {
            "biosegment": {
                "version": __version__,
                "architecture": dict(config),
                "classes": card.classes,
                "normalisation": card.normalisation,
                "parent": card.parent,
            }
        },
    }
    return rdf


def _smallest_input(config: dict) -> int:
    """Smallest spatial size the network runs on: instance norm needs more than one value
    per channel at the deepest level, so a normed network needs two steps there, not one."""
    multiple = size_multiple(config["levels"])
    return multiple if config.get("norm") == "none" else 2 * multiple


def _zoo_name(name: str) -> str:
    """bioimage.io names allow letters, digits, spaces and ``_-()``; at most 128 characters."""
    kept = "".join(ch if ch.isalnum() or ch in " _-()" else " " for ch in name).strip()
    return " ".join(kept.split())[:128] or "BioSegment U-Net"


def export_bioimageio(
    model: UNet,
    card: ModelCard,
    destination: Path,
    *,
    test_input: np.ndarray | None = None,
    authors: list[dict] | None = None,
    license_id: str = "MIT",
    description: str | None = None,
) -> Path:
    """Write a bioimage.io model package for ``model`` (a ``.zip`` file, or else a folder).

    :param model: the U-Net.
    :param card: its model card (name, classes, normalisation, provenance).
    :param destination: ``*.zip`` for a package file (an existing file of that name is
        replaced in one step), any other path for a package folder, which must not exist yet:
        an existing folder is never replaced or emptied.
    :param test_input: a uint8 image (a slice, or a volume whose middle slice is used for
        2-D models) cut to at most 256 pixels per side; default: random pixels.
    :param authors: ``[{"name": ...}]``; default: "BioSegment user".
    :param license_id: an SPDX licence identifier for the weights.
    :returns: ``destination``.
    :raises InputError: naming ``destination`` when it is a folder (for a zip) or exists (for
        a folder), before anything is computed.
    """
    destination = Path(destination)
    _check_destination(destination)
    config = model.config
    card = ModelCard.from_dict(card.to_dict() | {"architecture": dict(config)})
    card.classes = card.classes or default_classes(config["num_classes"])
    with tempfile.TemporaryDirectory(prefix=".bioimageio-", dir=_scratch(destination)) as scratch:
        # The package is built in a folder of its own inside the scratch folder, so that a
        # folder package is renamed into place whole and the scratch folder still cleans up.
        folder = Path(scratch) / "package"
        folder.mkdir()
        files = {key: folder / name for key, name in _FILES.items()}
        state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
        torch.save(state, files["state_dict"])
        files["architecture"].write_text(inspect.getsource(unet_module), encoding="utf-8")
        export_torchscript(model, files["torchscript"], card=card)
        export_onnx(model, files["onnx"], card=card)
        image = _test_image(model, test_input)
        logits = _logits(model, image, card.normalisation)
        np.save(files["test_input"], image)
        np.save(files["test_output"], logits)
        # Sample tensors: the same data as images any viewer opens (batch axis dropped).
        tifffile.imwrite(files["sample_input"], image[0, 0])
        tifffile.imwrite(files["sample_output"], logits[0], photometric="minisblack")
        _cover(image, logits.argmax(axis=1), card.classes, files["cover"])
        files["documentation"].write_text(_readme(card, config), encoding="utf-8")
        files["card"].write_text(card.to_json(), encoding="utf-8")
        rdf = _describe(
            model,
            card,
            {k: v for k, v in files.items() if k not in ("cover", "documentation")},
            authors=authors or [{"name": "BioSegment user"}],
            license_id=license_id,
            description=description,
        )
        (folder / RDF_NAME).write_text(_yaml().safe_dump(rdf, sort_keys=False), encoding="utf-8")
        return _publish(folder, destination)


def _scratch(destination: Path) -> Path:
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _is_zip(destination: Path) -> bool:
    return destination.suffix.lower() == ".zip"


def _check_destination(destination: Path) -> None:
    """A package file may replace a file; a package folder goes only where nothing is."""
    if _is_zip(destination) and destination.is_dir():
        raise InputError(
            "is a folder; a package file needs a file name, and a folder is never replaced",
            source=destination,
        )
    if not _is_zip(destination) and os.path.lexists(destination):
        raise InputError(
            "already exists; a package folder is written only where nothing is yet (name a "
            "new folder, or a .zip file)",
            source=destination,
        )


def _publish(folder: Path, destination: Path) -> Path:
    """Zip ``folder`` to ``destination`` through a temporary name, or rename it there.

    ``folder`` lies beside ``destination`` (same file system), so the rename is one step and
    a folder that appeared at ``destination`` meanwhile makes it fail rather than be replaced.
    """
    if not _is_zip(destination):
        _check_destination(destination)
        os.rename(folder, destination)
        return destination
    temporary = destination.with_name(f".{destination.name}.tmp")
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, arcname=path.name)
        temporary.replace(destination)
    finally:
        temporary.unlink(missing_ok=True)
    return destination


# -- import -----------------------------------------------------------------------------------


def read_package_rdf(source: Path) -> dict:
    """The parsed ``rdf.yaml`` of a package zip or folder."""
    package = PackageFiles(source)
    try:
        return _parse_rdf(package)
    finally:
        package.close()


def _parse_rdf(package: PackageFiles) -> dict:
    try:
        rdf = _yaml().safe_load(package.read_rdf())
    except Exception as exc:  # a YAML error names line and column in its text
        if isinstance(exc, InputError):
            raise
        raise InputError(f"rdf.yaml is not valid YAML: {exc}", source=package.source) from None
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise InputError("rdf.yaml does not describe a model", source=package.source, where="type")
    return rdf


def _classes(rdf: dict, num_classes: int) -> list[dict]:
    own = (rdf.get("config") or {}).get("biosegment", {}).get("classes")
    if isinstance(own, list) and len(own) == num_classes:
        return own
    defaults = default_classes(num_classes)
    outputs = rdf.get("outputs") or [{}]
    for axis in outputs[0].get("axes") or []:
        if isinstance(axis, dict) and axis.get("type") == "channel":
            names = axis.get("channel_names") or []
            if len(names) == num_classes:
                for entry, name in zip(defaults, names):
                    entry["name"] = str(name)
    return defaults


def _per_sample_percentiles(kwargs: dict) -> bool:
    """A ``scale_range`` between percentiles of the sample itself (format 0.4 says
    ``mode: per_sample``; 0.5 names no reference tensor)."""
    if kwargs.get("reference_tensor") or kwargs.get("mode") in ("per_dataset", "fixed"):
        return False
    return "min_percentile" in kwargs or "max_percentile" in kwargs


def _preprocessing_steps(rdf: dict) -> list[tuple[str, dict]]:
    steps = (rdf.get("inputs") or [{}])[0].get("preprocessing") or []
    return [(step.get("id") or step.get("name"), step.get("kwargs") or {}) for step in steps]


def _imported_normalisation(rdf: dict) -> dict:
    """The card's scaling for a package: percentiles when it scales per sample by them."""
    for kind, kwargs in _preprocessing_steps(rdf):
        if kind == "scale_range" and _per_sample_percentiles(kwargs):
            return percentile_normalisation(
                float(kwargs.get("min_percentile", 0.0)), float(kwargs.get("max_percentile", 100.0))
            )
    return dict(DEFAULT_NORMALISATION)


def _scaled_test_input(rdf: dict, raw: np.ndarray, source: Path) -> np.ndarray:
    """Apply the package's input preprocessing (the kinds BioSegment's scalings use)."""
    values = raw.astype(np.float32)
    for kind, kwargs in _preprocessing_steps(rdf):
        if kind == "ensure_dtype":
            continue
        if kind == "scale_linear":
            values = values * np.float32(kwargs.get("gain", 1.0)) + np.float32(
                kwargs.get("offset", 0.0)
            )
        elif (
            kind == "scale_range"
            and raw.dtype == np.uint8
            and kwargs.get("mode") is None
            and not _per_sample_percentiles(kwargs)
        ):
            values = values / np.float32(255.0)
        elif kind == "scale_range" and _per_sample_percentiles(kwargs):
            lo, hi = np.percentile(
                values.astype(np.float64),
                [
                    float(kwargs.get("min_percentile", 0.0)),
                    float(kwargs.get("max_percentile", 100.0)),
                ],
            )
            eps = float(kwargs.get("eps", _SCALE_RANGE_EPS))
            values = ((values - lo) / (hi - lo + eps)).astype(np.float32)
        elif kind == "clip":
            values = np.clip(values, kwargs.get("min"), kwargs.get("max")).astype(np.float32)
        else:
            raise InputError(
                f"input preprocessing {kind!r} is not one BioSegment applies "
                "(it scales uint8 by 1/255 or between per-image percentiles)",
                source=source,
                where="inputs[0].preprocessing",
            )
    return values


def import_bioimageio(
    source: Path,
    models_dir: Path,
    *,
    name: str | None = None,
    atol: float = 1e-3,
    make_room: Callable[[list[Path]], object] | None = None,
    held_names: Collection[str] = (),
) -> Path:
    """Import a bioimage.io package whose state-dict weights are a ``neuralnets`` U-Net.

    Every file is read within a size bound and from inside the package only
    (:mod:`~biosegment.engine.bioimageio_package`); a model already in ``models/`` under the
    same name is left alone unless ``make_room`` moves it away
    (:func:`~biosegment.engine.model_publish.publish_model`).

    :param source: the package zip or folder.
    :param models_dir: the data folder's ``models/``; the model lands in ``models/<name>/``.
    :param name: name of the new model (default: the package's name), made a safe folder name.
    :param atol: largest logit difference from the package's test output that still counts
        as reproducing it.
    :param make_room: given the paths of an existing model of that name once the new one is
        written, to move them away; without it such a name is refused before any weights are
        read.
    :param held_names: model names that unfinished jobs hold for the models they will
        publish; such a name is refused before any weights are read, ``make_room`` or not.
    :returns: the written ``model.pytorch``.
    :raises ModelExistsError: when the name is taken and there is no ``make_room``.
    :raises StateError: at ``name`` when a job holds the name.
    :raises InputError: naming the package when it has no usable weights, its weights are not
        a U-Net this engine runs, or they do not reproduce the test output.
    """
    source = Path(source)
    package = PackageFiles(source)
    try:
        rdf = _parse_rdf(package)
        chosen = name or str(rdf.get("name") or source.stem)
        folder_name = model_folder_name(chosen)
        if folder_name in held_names:
            raise StateError(
                f"model name {folder_name!r} is held by a train job until it publishes its "
                "model or ends; import under another name",
                source=source,
                where="name",
            )
        existing = existing_model_paths(models_dir, folder_name)
        if existing and make_room is None:
            raise ModelExistsError(folder_name, existing)
        weights = (rdf.get("weights") or {}).get("pytorch_state_dict")
        if not isinstance(weights, dict):
            raise InputError(
                "the package has no pytorch_state_dict weights, the only kind "
                "BioSegment can rebuild and fine-tune",
                source=source,
                where="weights",
            )
        payload = package.read_checked(
            weights, where="weights.pytorch_state_dict", limit=MAX_WEIGHTS_BYTES
        )
        state = _load_state(payload, source)
        del payload  # the tensors are loaded; the file's bytes need not stay in memory
        try:
            config = infer_architecture(state)
        except InputError as exc:
            raise InputError(
                f"the weights are not a U-Net this engine runs: {exc.reason}",
                source=source,
                where=f"weights.pytorch_state_dict ({exc.where})",
            ) from None
        own = (rdf.get("config") or {}).get("biosegment", {}).get("architecture") or {}
        if own.get("norm") == "none" and config["norm"] == "instance":
            config["norm"] = "none"  # the one fact weights cannot tell
        model = UNet(**config)
        model.load_state_dict(state, strict=True)
        model.eval()
        _check_test_output(model, rdf, package, atol)
    finally:
        package.close()
    card = ModelCard(
        name=chosen,
        architecture=dict(config),
        classes=_classes(rdf, config["num_classes"]),
        normalisation=_imported_normalisation(rdf),
        training={
            "imported_from": str(source),
            "bioimageio": {
                "name": rdf.get("name"),
                "id": rdf.get("id"),
                "format_version": rdf.get("format_version"),
                "license": rdf.get("license"),
            },
        },
    )
    return publish_model(model, card, models_dir, folder_name, make_room=make_room)


def _load_state(payload: bytes, source: Path) -> dict:
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for damaged or unsafe files
        raise InputError(
            f"cannot read the state-dict weights: {exc}",
            source=source,
            where="weights.pytorch_state_dict",
        ) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InputError(
            "the state-dict weights hold no tensors",
            source=source,
            where="weights.pytorch_state_dict",
        )
    return {
        k.removeprefix("module."): v.float() if v.is_floating_point() else v
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
    }


def _check_test_output(model: UNet, rdf: dict, package: PackageFiles, atol: float) -> None:
    inputs, outputs = rdf.get("inputs") or [], rdf.get("outputs") or []
    if not inputs or not outputs:
        return
    test_in = inputs[0].get("test_tensor") or {}
    test_out = outputs[0].get("test_tensor") or {}
    # Format 0.4 listed test files apart from the tensors.
    test_in = test_in or {"source": (rdf.get("test_inputs") or [""])[0]}
    test_out = test_out or {"source": (rdf.get("test_outputs") or [""])[0]}
    if not source_of(test_in) or not source_of(test_out):
        return
    raw = _load_tensor(package, test_in, "inputs[0].test_tensor")
    _check_test_run_fits(model, raw, package.source)
    expected = _load_tensor(package, test_out, "outputs[0].test_tensor")
    scaled = _scaled_test_input(rdf, raw, package.source)
    with torch.no_grad():
        computed = traceable(model)(torch.from_numpy(np.ascontiguousarray(scaled))).numpy()
    if computed.shape != expected.shape:
        raise InputError(
            f"the network's output has shape {list(computed.shape)}, the "
            f"package's test output {list(expected.shape)}",
            source=package.source,
            where="outputs[0].test_tensor",
        )
    difference = float(np.abs(computed - expected).max())
    if difference > atol:
        raise InputError(
            f"the weights do not reproduce the package's test output (largest "
            f"difference {difference:.3g} > {atol})",
            source=package.source,
            where="outputs[0].test_tensor",
        )


def _load_tensor(package: PackageFiles, entry: dict, where: str) -> np.ndarray:
    payload = package.read_checked(entry, where=where, limit=MAX_TEST_TENSOR_BYTES)
    try:
        return np.load(io.BytesIO(payload), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(
            f"{source_of(entry)} is not a .npy array: {exc}", source=package.source, where=where
        ) from None


def _check_test_run_fits(model: UNet, raw: np.ndarray, source: Path) -> None:
    """Refuse a test input whose run through the network would not fit the bound."""
    voxels = int(np.prod(raw.shape, dtype=np.int64))
    per_voxel = model.config["feature_maps"] * _ACTIVATIONS_PER_FEATURE_MAP * 4
    needed = voxels * per_voxel
    if needed > TEST_RUN_BUDGET:
        raise InputError(
            f"the test input {list(raw.shape)} would take about {needed / 2**30:.1f} GiB to "
            f"run through this network, more than the {TEST_RUN_BUDGET / 2**30:g} GiB "
            f"BioSegment allows for the check; a test input of at most "
            f"{TEST_RUN_BUDGET // per_voxel:,} voxels fits",
            source=source,
            where="inputs[0].test_tensor",
        )

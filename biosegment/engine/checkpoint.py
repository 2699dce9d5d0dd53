"""Load and save U-Net checkpoints in the old stack's format, plus their ``model.json``.

A checkpoint is a ``.pytorch`` file holding a plain ``state_dict`` with ``neuralnets`` key
names. The architecture is read back from the keys and tensor shapes alone, so a bare legacy
file needs no side file; a ``model.json`` beside it (same stem) adds classes, provenance and
the one fact weights cannot tell: whether a norm-less layout means instance norm or no norm.
Files are opened with ``weights_only=True`` so a checkpoint can never run code, and every
write goes to a temporary name first so no reader sees half a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import torch

from biosegment.engine.model_card import ModelCard, default_card, default_classes
from biosegment.engine.unet import UNet, architecture_dict
from biosegment.errors import InputError
from biosegment.folder_names import MODEL_CARD, MODEL_WEIGHTS

__all__ = [
    "load_model",
    "save_model",
    "infer_architecture",
    "read_state_dict",
    "CHECKPOINT_NAME",
    "CARD_NAME",
]

#: File names inside a model folder (``models/<model>/``).
CHECKPOINT_NAME = MODEL_WEIGHTS
CARD_NAME = MODEL_CARD

_FIRST_CONV = "encoder.features.convblock1.conv1.unit.0.weight"
_ENCODER_BLOCK = re.compile(r"^encoder\.features\.convblock(\d+)\.conv1\.unit\.0\.weight$")
# Containers other tools wrap a state_dict in; the first one found is unwrapped.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def infer_architecture(state_dict: dict) -> dict:
    """Recover U-Net hyper-parameters from ``state_dict`` keys and shapes alone.

    Instance norm without affine parameters and no norm leave the same keys; both are reported
    as ``instance``, as the old library assumed (a ``model.json`` may say ``none``).

    :param state_dict: tensors keyed in the ``neuralnets`` layout.
    :returns: ``{dims, in_channels, num_classes, feature_maps, levels, norm}``.
    :raises InputError: when the keys are not those of a U-Net (``where`` names the key).
    """
    first = state_dict.get(_FIRST_CONV)
    if not isinstance(first, torch.Tensor) or first.dim() not in (4, 5):
        raise InputError("not a U-Net checkpoint: no first encoder convolution", where=_FIRST_CONV)
    found = {int(m.group(1)) for key in state_dict if (m := _ENCODER_BLOCK.match(key))}
    levels = len(found)
    if found != set(range(1, levels + 1)):
        raise InputError(
            f"encoder levels {sorted(found)} are not numbered 1..{levels}", where="encoder.features"
        )
    output = state_dict.get("decoder.output.weight")
    if not isinstance(output, torch.Tensor):
        raise InputError(
            "not a U-Net checkpoint: no output convolution", where="decoder.output.weight"
        )
    if "encoder.center_conv.conv1.unit.0.weight" not in state_dict:
        raise InputError(
            "not a U-Net checkpoint: no centre block",
            where="encoder.center_conv.conv1.unit.0.weight",
        )
    batch_norm = "encoder.features.convblock1.conv1.unit.norm.running_mean" in state_dict
    return architecture_dict(
        dims=first.dim() - 2,
        in_channels=int(first.shape[1]),
        num_classes=int(output.shape[0]),
        feature_maps=int(first.shape[0]),
        levels=levels,
        norm="batch" if batch_norm else "instance",
    )


def _checkpoint_path(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise InputError("model file not found", source=path)
    return path


def read_state_dict(path: Path) -> dict:
    """Read the tensors of a checkpoint file (or a folder holding ``model.pytorch``).

    Floating-point weights stored in half precision are cast to float32; a ``module.`` prefix
    left by ``DataParallel`` is dropped.

    :raises InputError: naming the file when it is missing, corrupt or holds no tensors.
    """
    path = _checkpoint_path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        # torch's own messages advise unsafe loading; name the problem in product terms.
        raise InputError(
            "cannot read checkpoint: damaged, truncated, or not a PyTorch "
            f"weights file ({type(exc).__name__})",
            source=path,
        ) from None
    for key in _WRAPPER_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not loaded:
        raise InputError("checkpoint holds no state_dict", source=path)
    state = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InputError("checkpoint entry is not a named tensor", source=path, where=str(key))
        key = key[len("module.") :] if key.startswith("module.") else key
        state[key] = value.float() if value.is_floating_point() else value
    return state


def _read_card(card_path: Path) -> ModelCard | None:
    if not card_path.is_file():
        return None
    try:
        text = card_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read model card: {exc}", source=card_path) from None
    return ModelCard.from_json(text, source=card_path)


def _merge_architecture(inferred: dict, card: ModelCard | None, card_path: Path) -> dict:
    """Weights decide the shapes; the card only settles instance versus no norm."""
    if card is None or not card.architecture:
        return inferred
    merged = dict(inferred)
    stated_norm = card.architecture.get("norm")
    if inferred["norm"] == "instance" and stated_norm == "none":
        merged["norm"] = "none"
    for key, value in card.architecture.items():
        if key in merged and merged[key] != value:
            raise InputError(
                f"says {value!r} but the weights have {merged[key]!r}",
                source=card_path,
                where=f"architecture.{key}",
            )
    return merged


def load_model(path: Path) -> tuple[UNet, ModelCard]:
    """Load a U-Net and its card from a ``.pytorch`` file or a model folder.

    :param path: a checkpoint file, or a folder holding ``model.pytorch``. A card is read from
        the ``.json`` file with the checkpoint's stem beside it (``model.json`` in a folder).
    :returns: the network in eval mode on the CPU (float32), and its card (defaults filled
        in for legacy files: name from the file or folder, generic class names).
    :raises InputError: naming the file for a missing, corrupt or non-U-Net checkpoint, or a
        card that contradicts the weights.
    """
    checkpoint = _checkpoint_path(path)
    state = read_state_dict(checkpoint)
    try:
        inferred = infer_architecture(state)
    except InputError as exc:
        raise InputError(exc.reason, source=checkpoint, where=exc.where) from None
    card_path = checkpoint.with_suffix(".json")
    card = _read_card(card_path)
    architecture = _merge_architecture(inferred, card, card_path)
    model = UNet(**architecture)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(
            f"weights do not fit a U-Net {architecture}: {str(exc).splitlines()[0]}",
            source=checkpoint,
        ) from None
    model.eval()
    name = checkpoint.parent.name if checkpoint.name == CHECKPOINT_NAME else checkpoint.stem
    if card is None:
        card = default_card(name, architecture)
    else:
        card.architecture = dict(architecture)
        card.name = card.name or name
        card.classes = card.classes or default_classes(architecture["num_classes"])
    return model, card


def _write_atomically(target: Path, write: Callable[[Path], object]) -> None:
    # A dot-prefixed temporary name: the data-folder watcher ignores it until the rename.
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def save_model(model: UNet, card: ModelCard, folder: Path) -> Path:
    """Write ``folder/model.pytorch`` (old key layout) and ``folder/model.json``.

    :param model: the network; its weights are saved from the CPU, whatever device it is on.
    :param card: the card to write; its ``architecture`` is set from ``model.config``.
    :param folder: the model folder, created when missing.
    :returns: the path of the written ``model.pytorch``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}
    card.architecture = dict(model.config)
    if not card.classes:
        card.classes = default_classes(model.config["num_classes"])
    checkpoint = folder / CHECKPOINT_NAME
    _write_atomically(checkpoint, lambda tmp: torch.save(state, tmp))
    _write_atomically(
        folder / CARD_NAME, lambda tmp: tmp.write_text(card.to_json(), encoding="utf-8")
    )
    return checkpoint

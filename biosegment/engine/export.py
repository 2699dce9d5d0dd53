"""Export a U-Net for other tools: TorchScript (PyTorch, Java/DJL, deepImageJ) and ONNX.

Both exports compute exactly what :class:`~biosegment.engine.unet.UNet` computes: raw logits
``(N, classes, [Z,] Y, X)`` for input already scaled to [0, 1], with batch and spatial sizes
left free; spatial sizes must be multiples of ``2 ** levels``. The scaling is not part of the
network: the model card's ``normalisation`` says which one the caller applies (by the pixel
type's range, uint8 / 255, or between the volume's percentiles; see
:func:`~biosegment.engine.intensity.describe_normalisation`). Class ids are the argmax over the class axis. The model
card travels with the file (TorchScript: an extra file ``model.json``; ONNX: metadata
entries), so a person who opens it elsewhere still knows the classes. Files are written to a
temporary name and renamed into place.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from biosegment.engine.intensity import describe_normalisation
from biosegment.engine.model_card import ModelCard
from biosegment.engine.unet import UNet, size_multiple
from biosegment.errors import InputError

__all__ = [
    "EXPORT_FORMATS",
    "FILE_SUFFIXES",
    "ONNX_OPSET",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "export_torchscript",
    "export_onnx",
    "example_input",
    "traceable",
]

#: Formats ``biosegment models export`` writes.
EXPORT_FORMATS = ("torchscript", "onnx", "bioimageio")
#: File name endings of each format's output.
FILE_SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx", "bioimageio": ".bioimageio.zip"}
#: ONNX operator set: 17 is read by every onnxruntime since 1.13 and by OpenCV, DJL, deepImageJ.
ONNX_OPSET = 17
INPUT_NAME = "raw"
OUTPUT_NAME = "logits"


class _Logits(nn.Module):
    """The U-Net's forward pass without its Python size check, which tracing cannot record."""

    def __init__(self, unet: UNet):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottom, skips = self.unet.encoder(x)
        return self.unet.decoder(bottom, skips)


def traceable(model: UNet) -> nn.Module:
    """A CPU, float32, eval-mode copy of ``model`` whose forward pass traces cleanly."""
    copy = UNet(**model.config)
    copy.load_state_dict(
        {
            k: v.detach().to("cpu", torch.float32)
            if v.is_floating_point()
            else v.detach().to("cpu")
            for k, v in model.state_dict().items()
        }
    )
    return _Logits(copy).eval()


def example_input(model: UNet, size: int | None = None) -> torch.Tensor:
    """A small zero input of the right rank whose sizes the network accepts."""
    multiple = size_multiple(model.config["levels"])
    side = size or max(multiple, 64 if model.config["dims"] == 2 else 16)
    side = -(-side // multiple) * multiple
    return torch.zeros((1, model.config["in_channels"]) + (side,) * model.config["dims"])


def _write_atomically(path: Path, payload: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(payload)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def export_torchscript(model: UNet, path: Path, *, card: ModelCard | None = None) -> Path:
    """Write ``model`` as a traced TorchScript file (``torch.jit.load`` reads it back).

    :param model: the network (left unchanged).
    :param path: the file to write, conventionally ``*.torchscript.pt``.
    :param card: stored inside as the extra file ``model.json``.
    :returns: ``path``.
    """
    module = traceable(model)
    buffer = io.BytesIO()
    extra = {"model.json": card.to_json()} if card is not None else {}
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer notes about Python values (none affect sizes), and torch's notice that
        # TorchScript is deprecated: it is still what deepImageJ and bioimage.io run.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example_input(model), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files=extra)
    return _write_atomically(path, buffer.getvalue())


def export_onnx(
    model: UNet, path: Path, *, card: ModelCard | None = None, opset: int = ONNX_OPSET
) -> Path:
    """Write ``model`` as an ONNX graph with free batch and spatial sizes.

    :param model: the network (left unchanged).
    :param path: the ``.onnx`` file to write.
    :param card: classes and normalisation are stored as metadata entries.
    :param opset: the ONNX operator set to target.
    :returns: ``path``.
    :raises InputError: when the ``onnx`` package is missing (``pip install biosegment[export]``).
    """
    try:
        import onnx
    except ImportError:
        raise InputError(
            "ONNX export needs the onnx package: pip install 'biosegment[export]'", where="format"
        ) from None
    module = traceable(model)
    spatial = ["z", "y", "x"][-model.config["dims"] :]
    dynamic = {0: "batch", **{2 + i: name for i, name in enumerate(spatial)}}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript-based exporter: fast, and needs no onnxscript. It notes that
        # instance norm runs "in training mode", which is how a norm without running
        # statistics always computes; the graph is the eval-mode network.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example_input(model),),
            # The TorchScript exporter writes to a file object as well; torch's annotation
            # names paths only.
            buffer,  # type: ignore[arg-type]
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
            dynamo=False,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    graph.producer_name = "BioSegment"
    scaling = describe_normalisation(card.normalisation if card is not None else None)
    graph.doc_string = (
        f"U-Net logits (N, classes, spatial) for input scaled to [0, 1] ({scaling}); "
        "class ids are the argmax over axis 1"
    )
    metadata = {"architecture": json.dumps(model.config)}
    if card is not None:
        metadata.update(
            name=card.name,
            classes=json.dumps(card.classes),
            normalisation=json.dumps(card.normalisation),
        )
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(graph)
    return _write_atomically(path, graph.SerializeToString())

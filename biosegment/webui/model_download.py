"""Export a model for download from the web UI, in the formats ``biosegment models export`` writes.

The export is the engine's own (:func:`~biosegment.engine.export.export_onnx`,
:func:`~biosegment.engine.export.export_torchscript`,
:func:`~biosegment.engine.bioimageio.export_bioimageio` with its defaults: random test pixels,
author "BioSegment user", MIT licence) into a scratch folder; the route sends the file and the
folder goes. It runs in the web process rather than as a queued job because it is short:
exporting the demo model (8 feature maps, 4 levels, 2 MB of weights) took 2.4 s as ONNX,
2.8 s as TorchScript and 4.0 s as a bioimage.io package on a shared 2-core CPU (load average
about 6), less than a queued job takes to be picked up. Exports run one at a time
(:data:`_ONE_AT_A_TIME`); a second waits up to :data:`WAIT_SECONDS`, then answers 503.
The engine's export modules (and torch) are imported by the first export, so the web UI starts
without them. Memory is estimated before the checkpoint is loaded, from its size (copies of the weights
while tracing and serialising) and one test run of 256 x 256 pixels (the bioimage.io
package's test output), and checked against ``[limits] download_mb`` (413 saying both).
"""

from __future__ import annotations

import threading
from pathlib import Path

from biosegment.config import Config
from biosegment.webui.download_files import safe_file_name
from biosegment.webui.errors import ApiError

__all__ = ["WAIT_SECONDS", "export_memory", "export_model"]

#: How long a second export waits for the one running before answering 503.
WAIT_SECONDS = 60.0
#: Copies of the weights alive during an export: the loaded network, the traced copy, the
#: traced module, serialised bytes of each format and the bioimage.io state dict.
_WEIGHT_COPIES = 10
#: float32 values per test pixel and first-level feature map (as the bioimage.io import's
#: check counts them), for one 256 x 256 test run.
_TEST_RUN_BYTES_PER_FEATURE_MAP = 256 * 256 * 6 * 4
_MIB = 2**20
_ONE_AT_A_TIME = threading.Lock()


def export_memory(checkpoint_bytes: int, feature_maps: int) -> int:
    """Bytes an export of a model of this size holds at most (an estimate, on the high side)."""
    return _WEIGHT_COPIES * checkpoint_bytes + feature_maps * _TEST_RUN_BYTES_PER_FEATURE_MAP


def _check_fits(config: Config, name: str, checkpoint: Path, architecture: dict) -> None:
    feature_maps = int(architecture.get("feature_maps") or 64)
    needed = export_memory(checkpoint.stat().st_size, feature_maps)
    if needed > config.limits.download_mb * _MIB:
        raise ApiError(
            413,
            f"exporting model {name!r} would take about {needed / _MIB:,.0f} MiB of memory in "
            f"the web server, more than the {config.limits.download_mb} MiB [limits] "
            f"download_mb allows; export it with `biosegment models export {name}`, or raise "
            "the limit",
            field="format",
        )


def export_model(
    config: Config, name: str, checkpoint: Path, architecture: dict, wanted: str, scratch: Path
) -> tuple[Path, str]:
    """Export the model ``name`` (weights at ``checkpoint``) as ``wanted`` into ``scratch``.

    :returns: the exported file, and the file name to offer (the model's name made safe).
    :raises ApiError: 413 when it would not fit, 503 when another export ran too long.
    """
    _check_fits(config, name, checkpoint, architecture)
    if not _ONE_AT_A_TIME.acquire(timeout=WAIT_SECONDS):
        raise ApiError(
            503, "another model export is still running; try again in a minute", field=None
        )
    # torch loads only now: the web UI starts and serves everything else without it
    from biosegment.engine.bioimageio import export_bioimageio
    from biosegment.engine.checkpoint import load_model
    from biosegment.engine.export import FILE_SUFFIXES, export_onnx, export_torchscript

    try:
        network, card = load_model(checkpoint)
        file_name = safe_file_name(card.name or name, FILE_SUFFIXES[wanted])
        target = scratch / file_name
        if wanted == "onnx":
            export_onnx(network, target, card=card)
        elif wanted == "torchscript":
            export_torchscript(network, target, card=card)
        else:
            export_bioimageio(network, card, target)
    finally:
        _ONE_AT_A_TIME.release()
    return target, file_name

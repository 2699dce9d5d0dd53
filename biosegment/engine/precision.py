"""The arithmetic a network can compute in, named once for training and segmentation.

``fp32`` is float32 throughout; ``bf16`` runs the convolutions in bfloat16 (statistics and the
loss or logits stay float32); ``auto`` picks bf16 only where the device multiplies it in
hardware (see :func:`biosegment.engine.device.has_fast_bfloat16`). Settings accept
:data:`PRECISIONS`; the code that computes receives one of :data:`COMPUTED_PRECISIONS`.
"""

from __future__ import annotations

__all__ = ["AUTO_PRECISION", "COMPUTED_PRECISIONS", "PRECISIONS"]

#: The precision chosen for the device at run time.
AUTO_PRECISION = "auto"
#: What a forward or backward pass runs in once ``auto`` is resolved.
COMPUTED_PRECISIONS = ("fp32", "bf16")
#: Every precision a person may ask for.
PRECISIONS = (AUTO_PRECISION, *COMPUTED_PRECISIONS)

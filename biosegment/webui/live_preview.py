"""The viewer's live layer: what a running train job's latest weights make of a slice.

The job saves a snapshot of its weights every few seconds into its folder (see
:mod:`biosegment.tasks.train_live`); this process predicts from it, so the preview works
wherever the job runs, as long as the data folder is shared. A snapshot is loaded once per
version of its weights file; a slice is predicted once per snapshot, whole, by the engine's
own inference path with the model card's normalisation and pixel-size zoom (exactly what a
segmentation with those weights would give), and its tiles are cut from the cached plane.
Several tiles of one slice asked at once wait for one prediction; one job's predictions run
one at a time, so a preview never takes more cores than one inference.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosegment.errors import NotFoundError
from biosegment.volumes import open_volume

__all__ = ["LivePreviews", "LivePlane"]

# Predicted slices kept, over all jobs (each one uint8 slice).
_PLANES_KEPT = 24


@dataclass(frozen=True, slots=True)
class LivePlane:
    """One predicted slice: class ids, and the snapshot version they come from."""

    labels: np.ndarray
    version: str


@dataclass(slots=True)
class _Loaded:
    version: str
    model: object
    card: object


class LivePreviews:
    """Predictions of running jobs' snapshots, cached per snapshot version and slice.

    :param device: where predictions run (``[engine] device``).
    """

    def __init__(self, *, device: str = "auto"):
        self.device = device
        self._lock = threading.Lock()
        self._models: dict[str, _Loaded] = {}
        self._job_locks: dict[str, threading.Lock] = {}
        self._planes: OrderedDict[tuple, LivePlane] = OrderedDict()

    def _job_lock(self, job_id: str) -> threading.Lock:
        with self._lock:
            return self._job_locks.setdefault(job_id, threading.Lock())

    def _model(self, job_id: str, folder: Path, version: str) -> _Loaded:
        from biosegment.engine.checkpoint import load_model

        loaded = self._models.get(job_id)
        if loaded is None or loaded.version != version:
            model, card = load_model(folder)
            loaded = _Loaded(version, model.eval(), card)
            self._models[job_id] = loaded
        return loaded

    def plane(
        self, job_id: str, folder: Path, version: str, volume_path: Path, dataset: dict, z: int
    ) -> LivePlane:
        """Class ids of slice ``z`` as the snapshot ``version`` in ``folder`` predicts it.

        :raises NotFoundError: when the snapshot vanished (the job ended meanwhile).
        """
        key = (job_id, version, z)
        with self._lock:
            cached = self._planes.get(key)
            if cached is not None:
                self._planes.move_to_end(key)
                return cached
        with self._job_lock(job_id):
            with self._lock:  # another request may have made it while this one waited
                cached = self._planes.get(key)
            if cached is not None:
                return cached
            try:
                loaded = self._model(job_id, folder, version)
            except FileNotFoundError:
                raise NotFoundError(f"job {job_id} has no live snapshot any more") from None
            labels = self._predict(loaded, volume_path, dataset, z)
            plane = LivePlane(labels, loaded.version)
            with self._lock:
                self._planes[key] = plane
                while len(self._planes) > _PLANES_KEPT:
                    self._planes.popitem(last=False)
            return plane

    def _predict(self, loaded: _Loaded, volume_path: Path, dataset: dict, z: int) -> np.ndarray:
        from biosegment.engine.inference import InferenceSettings, segment_block
        from biosegment.engine.pixel_size import zoom_for

        card = loaded.card
        with open_volume(volume_path, dataset.get("file_type")) as volume:
            zoom = zoom_for(card.pixel_size, dataset.get("voxel_size") or volume.voxel_size)
            settings = InferenceSettings(
                device=self.device, normalisation=dict(card.normalisation), zoom=zoom
            )
            result = segment_block(volume, loaded.model, z, z + 1, settings=settings)
        return np.ascontiguousarray(result.labels[0])

    def forget(self, job_id: str) -> None:
        """Drop a finished job's model and slices."""
        with self._lock:
            self._models.pop(job_id, None)
            for key in [k for k in self._planes if k[0] == job_id]:
                del self._planes[key]

"""The viewer's live layer: what a running train job's latest weights make of a slice.

The job saves a snapshot of its weights every few seconds into its folder (see
:mod:`biosegment.tasks.train_live`); this process predicts from it, so the preview works
wherever the job runs, as long as the data folder is shared. A snapshot is loaded once per
version of its weights file; a slice is predicted whole, by the engine's own inference path
with the model card's normalisation and pixel-size zoom (exactly what a segmentation with those
weights would give), and its tiles are cut from the cached plane.

Predictions run in a thread of their own per job, one at a time, so a preview never takes more
cores than one inference, and they are never abandoned: a request waits for its slice at most
``wait_seconds`` and then answers 503, while the prediction goes on and is kept for the next
request. At most ``waiting_requests`` requests wait at once, over all jobs: a viewer asks for a
slice's tiles all together, and a large slice takes longer to predict than a page may wait, so
without a bound its tiles would hold every one of the web server's threads and every other
page would queue behind them; a request beyond the bound answers at once (the cached plane, or
503) while the prediction it asked for goes on. Until a slice's prediction from the latest snapshot is ready, the newest one made from
an earlier snapshot is served, so a slice that takes longer to predict than the job takes to
save a snapshot still shows. Each job keeps at most one slice waiting behind the one being
predicted: a newer request replaces it, so scrolling through a stack predicts what is viewed,
not every slice passed on the way.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosegment.engine.freed_memory import release_freed_memory
from biosegment.errors import NotFoundError
from biosegment.volumes import open_volume
from biosegment.webui.errors import ApiError

__all__ = ["LivePreviews", "LivePlane", "LivePreviewPending"]

# Predicted slices kept, over all jobs (each one uint8 slice; the newest snapshot's per slice).
_PLANES_KEPT = 24
#: Requests that may wait for a live prediction at once: a quarter of the web server's request
#: threads (``webui.server.SERVER_THREADS``, 8), so the rest always answer other pages.
WAITING_REQUESTS = 2
#: Bytes one slice's prediction may take for its arrays. The web process predicts beside the
#: requests it serves and, on one machine, beside the fine-tune itself, so a live preview keeps
#: to a quarter of a segmentation block's budget: a large slice is cut into more tiles.
LIVE_MEMORY_BUDGET = 256 * 2**20


class LivePreviewPending(ApiError):
    """A slice's prediction is not ready yet (503); it goes on and is kept for the next ask."""

    def __init__(self, message: str):
        super().__init__(503, message, field="index")


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


@dataclass(eq=False, slots=True)
class _Prediction:
    """One slice asked of one snapshot, from the ask until it is predicted (or replaced)."""

    version: str
    z: int
    folder: Path
    volume_path: Path
    dataset: dict
    finished: bool = False
    plane: LivePlane | None = None
    error: Exception | None = None


@dataclass(slots=True)
class _JobWork:
    """What one job's prediction thread is doing and will do next."""

    running: _Prediction | None = None
    waiting: _Prediction | None = None
    thread: threading.Thread | None = None

    def find(self, version: str, z: int) -> _Prediction | None:
        for prediction in (self.running, self.waiting):
            if prediction is not None and (prediction.version, prediction.z) == (version, z):
                return prediction
        return None


class LivePreviews:
    """Predictions of running jobs' snapshots, cached per job and slice; see the module doc.

    :param device: where predictions run (``[engine] device``).
    :param wait_seconds: how long a request waits for its slice before answering 503
        (``[limits] read_seconds``).
    :param waiting_requests: how many requests may wait for predictions at once; the others
        answer at once.
    """

    def __init__(
        self,
        *,
        device: str = "auto",
        wait_seconds: float = 10.0,
        waiting_requests: int = WAITING_REQUESTS,
    ):
        self.device = device
        self.wait_seconds = float(wait_seconds)
        self.waiting_requests = int(waiting_requests)
        self._waiting = 0  # requests waiting for a prediction now
        self._changed = threading.Condition()
        self._models: dict[str, _Loaded] = {}
        self._work: dict[str, _JobWork] = {}
        self._planes: OrderedDict[tuple[str, int], LivePlane] = OrderedDict()
        self.predictions_made = 0  #: slices predicted so far (for tests and diagnostics)

    def plane(
        self, job_id: str, folder: Path, version: str, volume_path: Path, dataset: dict, z: int
    ) -> LivePlane:
        """Class ids of slice ``z`` as the snapshot ``version`` in ``folder`` predicts it, or,
        while that prediction runs, as the newest earlier snapshot predicted it.

        :raises NotFoundError: when the snapshot vanished (the job ended meanwhile).
        :raises LivePreviewPending: when the slice was never predicted and its prediction
            did not finish within ``wait_seconds``, or ``waiting_requests`` requests were
            waiting already (it goes on, for the next request).
        """
        deadline = time.monotonic() + self.wait_seconds
        with self._changed:
            cached = self._cached(job_id, z)
            if cached is not None and cached.version == version:
                return cached
            prediction = self._ask(job_id, _Prediction(version, z, folder, volume_path, dataset))
            if not prediction.finished and self._waiting < self.waiting_requests:
                self._waiting += 1
                try:
                    while not prediction.finished:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._changed.wait(left)
                finally:
                    self._waiting -= 1
            if prediction.error is not None:
                raise prediction.error
            if prediction.plane is not None:
                return prediction.plane
            cached = self._cached(job_id, z)
        if cached is not None:
            return cached
        raise LivePreviewPending(
            f"slice {z} of job {job_id}'s live preview is still being predicted; it is kept "
            "when ready, ask again in a moment"
        )

    def _cached(self, job_id: str, z: int) -> LivePlane | None:
        cached = self._planes.get((job_id, z))
        if cached is not None:
            self._planes.move_to_end((job_id, z))
        return cached

    def _ask(self, job_id: str, wanted: _Prediction) -> _Prediction:
        """The prediction of ``wanted``'s slice and snapshot: the one under way, or ``wanted``
        queued next for the job (replacing any slice that was waiting)."""
        work = self._work.setdefault(job_id, _JobWork())
        under_way = work.find(wanted.version, wanted.z)
        if under_way is not None:
            return under_way
        if work.waiting is not None:
            work.waiting.finished = True  # replaced: its requests get what the cache holds
        work.waiting = wanted
        if work.thread is None:
            work.thread = threading.Thread(
                target=self._predict_queued, args=(job_id, work), name=f"live {job_id}", daemon=True
            )
            work.thread.start()
        self._changed.notify_all()
        return wanted

    def _predict_queued(self, job_id: str, work: _JobWork) -> None:
        """The job's prediction thread: predict what is waiting until nothing is."""
        while True:
            with self._changed:
                prediction = work.waiting
                if prediction is None or self._work.get(job_id) is not work:
                    work.thread = None
                    return
                work.waiting, work.running = None, prediction
            plane, error = None, None
            try:
                plane = self._predict_slice(job_id, prediction)
            except Exception as exc:  # handed to the requests waiting for this slice
                error = exc
            # a large slice's working arrays are freed now: back to the system, not kept in
            # this thread's arena beside the fine-tune that runs in this process
            release_freed_memory()
            with self._changed:
                work.running = None
                prediction.plane, prediction.error, prediction.finished = plane, error, True
                if plane is not None and self._work.get(job_id) is work:
                    self.predictions_made += 1
                    self._planes[(job_id, prediction.z)] = plane
                    self._planes.move_to_end((job_id, prediction.z))
                    while len(self._planes) > _PLANES_KEPT:
                        self._planes.popitem(last=False)
                self._changed.notify_all()

    def _predict_slice(self, job_id: str, prediction: _Prediction) -> LivePlane:
        try:
            loaded = self._model(job_id, prediction.folder, prediction.version)
        except FileNotFoundError:
            raise NotFoundError(f"job {job_id} has no live snapshot any more") from None
        labels = self._predict(loaded, prediction.volume_path, prediction.dataset, prediction.z)
        return LivePlane(labels, loaded.version)

    def _model(self, job_id: str, folder: Path, version: str) -> _Loaded:
        from biosegment.engine.checkpoint import load_model

        with self._changed:
            loaded = self._models.get(job_id)
        if loaded is None or loaded.version != version:
            model, card = load_model(folder)
            loaded = _Loaded(version, model.eval(), card)
            with self._changed:
                self._models[job_id] = loaded
        return loaded

    def _predict(self, loaded: _Loaded, volume_path: Path, dataset: dict, z: int) -> np.ndarray:
        from biosegment.engine.inference import InferenceSettings, segment_block
        from biosegment.engine.pixel_size import zoom_for

        card = loaded.card
        with open_volume(volume_path, dataset.get("file_type")) as volume:
            zoom = zoom_for(card.pixel_size, dataset.get("voxel_size") or volume.voxel_size)
            settings = InferenceSettings(
                device=self.device,
                normalisation=dict(card.normalisation),
                zoom=zoom,
                memory_budget=LIVE_MEMORY_BUDGET,
            )
            result = segment_block(volume, loaded.model, z, z + 1, settings=settings)
        return np.ascontiguousarray(result.labels[0])

    def forget(self, job_id: str) -> None:
        """Drop a finished job's model, slices and the slice waiting to be predicted."""
        with self._changed:
            self._models.pop(job_id, None)
            work = self._work.pop(job_id, None)
            if work is not None and work.waiting is not None:
                work.waiting.finished = True
                work.waiting = None
            for key in [k for k in self._planes if k[0] == job_id]:
                del self._planes[key]
            self._changed.notify_all()

"""The one door to jobs for the web UI and the CLI: submit, cancel, retry, list, read logs,
and a train job's person-facing actions (live preview, step curve, accept, discard).

:class:`JobService` checks a request against the catalog (the dataset, model and annotation must
exist; option names and output names must be valid), creates the job's catalog row and puts the
job id on the queue. A train job holds its model name in the catalog from its request until it
publishes the model or ends, and a retry asks for the name again; a segmentation identical to one
still queued or running is answered with that job instead of a second one. Callers never touch
``queue.db``, Redis or a job's folder themselves: the train job's actions are delegated to
:mod:`biosegment.tasks.train_actions`, and renaming, deleting (to the trash) and restoring the
annotations, segmentations and models jobs use and make to :mod:`biosegment.tasks.item_changes`,
which refuses what a job still needs. Every method returns plain job rows (dicts), the same ones
``biosegment jobs --json`` prints, or plain documents. Errors name what was wrong:
:class:`~biosegment.errors.NotFoundError` for an unknown dataset, model or job,
:class:`~biosegment.errors.InputError` for a bad option, :class:`~biosegment.errors.StateError`
for a job in the wrong state for a live action, or a model name another job holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict, Unpack

from huey import Huey

from biosegment.catalog import open_catalog
from biosegment.catalog.store import Catalog
from biosegment.config import Config
from biosegment.engine.object_settings import object_classes
from biosegment.engine.segment_settings import SegmentSettings
from biosegment.engine.train_settings import NETWORK_FIELDS, TrainingSettings
from biosegment.errors import InputError, NotFoundError
from biosegment.folder_names import MODEL_SUFFIX, MODELS_DIR, SEGMENTATIONS_DIR
from biosegment.tasks import item_changes, train_actions
from biosegment.tasks.naming import checked_name, unique_name
from biosegment.tasks.queue import make_huey, queue_tasks
from biosegment.tasks.train_actions import LiveSnapshot
from biosegment.tasks.train_fit import require_training_fits
from biosegment.tasks.workspace import JobWorkspace

__all__ = ["JobService", "LiveSnapshot", "TRAIN_EXTRAS", "SCRATCH", "LOG_TAIL_BYTES"]

#: Options of ``submit_train`` besides the training settings
#: (:class:`~biosegment.engine.train_settings.TrainingSettings` fields).
TRAIN_EXTRAS = ("trigger",)
#: ``base_model`` value that asks for a new network even where the project has a default model.
SCRATCH = "scratch"
#: ``job_log`` returns at most this much of the end of a log.
LOG_TAIL_BYTES = 1_000_000
_ACTIVE = train_actions.ACTIVE_STATES


class JobFilters(TypedDict, total=False):
    """What :meth:`JobService.jobs` can filter on."""

    state: str | None
    kind: str | None
    limit: int


class JobService:
    """Submit and manage the jobs of one data folder (thread-safe; one per web server is fine).

    :param config: the configuration; its data folder must exist.
    :param huey: the queue to use (default: :func:`biosegment.tasks.make_huey` on first enqueue).
    """

    def __init__(self, config: Config, *, huey: Huey | None = None) -> None:
        self.config = config
        self.root = Path(config.data_dir)
        self._huey = huey
        self._catalog: Catalog | None = None
        self._lock = threading.RLock()

    # -- plumbing --------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        with self._lock:
            if self._catalog is None:
                self._catalog = open_catalog(self.root)
            return self._catalog

    @property
    def huey(self) -> Huey:
        with self._lock:
            if self._huey is None:
                self._huey = make_huey(self.config)
            return self._huey

    def close(self) -> None:
        with self._lock:
            if self._catalog is not None:
                self._catalog.close()
                self._catalog = None

    def enqueue(self, job_id: str) -> None:
        """Put a job id on the queue (the job row must exist and be ``queued``)."""
        queue_tasks(self.huey).run_job(job_id)

    def _create(
        self, kind: str, params: dict, enqueue: bool, *, model_name: str | None = None
    ) -> dict:
        """A new job row (holding ``model_name``, when given), started as :meth:`_start`."""
        return self._start(self.catalog.create_job(kind, params, model_name=model_name), enqueue)

    def _start(self, row: dict, enqueue: bool) -> dict:
        """Give a new job row its log and put it on the queue (``enqueue``); return the row."""
        catalog = self.catalog
        workspace = JobWorkspace.of(self.config, row["id"])
        row = catalog.update_job(
            row["id"],
            log_path=workspace.log_location,
            message="waiting for a worker" if enqueue else "starting",
        )
        if enqueue:
            try:
                self.enqueue(row["id"])
            except Exception as exc:
                # A job nobody will ever run must not sit in the list as "queued".
                catalog.update_job(row["id"], state="failed", message=f"could not be queued: {exc}")
                raise
        return catalog.job(row["id"])

    def _names_in_use(self, kind: str, key: str, **match: str) -> set[str]:
        """Output names of unfinished jobs of ``kind`` (so two jobs never pick the same one)."""
        names = set()
        for state in _ACTIVE:
            for job in self.catalog.jobs_in_state(state):
                params = job.get("params") or {}
                if job["kind"] != kind:
                    continue
                if all(params.get(k) == v for k, v in match.items()) and params.get(key):
                    names.add(params[key])
        return names

    def _models_on_disk(self) -> set[str]:
        models_dir = self.root / MODELS_DIR
        if not models_dir.is_dir():
            return set()
        return {p.name.removesuffix(MODEL_SUFFIX) for p in models_dir.iterdir()}

    def _model_names_taken(self) -> set[str]:
        """Names no new model may take: catalogued, in ``models/``, or held by a job."""
        taken = {m["name"] for m in self.catalog.models()} | self._models_on_disk()
        return taken | self.catalog.reserved_model_names() | self._names_in_use("train", "name")

    def _require_free_model_name(self, name: str, *, except_job: str | None = None) -> None:
        """Refuse a name a model in ``models/`` has, or one the catalog refuses (a job holds it:
        409 naming the job; a catalogued model has it). The catalog checks again as it records
        the claim, in the same transaction."""
        if name in self._models_on_disk():
            raise InputError(
                f"{MODELS_DIR}/{name} already exists; choose another name", where="name"
            )
        self.catalog.require_free_model_name(name, except_job=except_job)

    # -- what jobs use and make: rename, move to the trash, restore ---------------------------

    def rename_item(
        self, kind: str, name: str, new_name: str, *, dataset: str | None = None
    ) -> dict:
        """Rename an annotation, segmentation or model (see :mod:`~biosegment.tasks.item_changes`)."""
        with self._lock:
            ref = item_changes.ItemRef(kind, name, dataset)
            return item_changes.rename_item(self.catalog, self.root, ref, new_name)

    def delete_item(self, kind: str, name: str, *, dataset: str | None = None) -> dict:
        """Move an annotation, segmentation or model to the trash; return the trash entry."""
        with self._lock:
            ref = item_changes.ItemRef(kind, name, dataset)
            return item_changes.delete_item(self.catalog, self.root, ref)

    def restore_item(self, entry_id: str) -> dict:
        """Move a trash entry back and register it again: ``{"entry", "item"}``."""
        with self._lock:
            return item_changes.restore_item(self.catalog, self.root, entry_id)

    def trash(self) -> list[dict]:
        """What the data folder's trash holds, newest first."""
        return item_changes.trash_entries(self.root)

    # -- submitting ------------------------------------------------------------------------

    def submit_segment(
        self,
        dataset: str,
        model: str,
        *,
        name: str | None = None,
        trigger: str | None = None,
        enqueue: bool = True,
        **options: object,
    ) -> dict:
        """Queue a segmentation of ``dataset`` with ``model``; return its job row.

        The options are :class:`~biosegment.engine.segment_settings.SegmentSettings` fields
        (``block_z``, ``window``, ``precision``, ``output_format``, ...); ``trigger`` says who
        asked (``cli``, ``ui``, ``auto``, ``accept``). The row stores the settings
        (``params["settings"]``); the result goes to ``segmentations/<dataset>/<name>/``
        (default name: the model's, made unique). ``enqueue=False`` only creates the row, for a
        caller that runs it itself. While an identical segmentation is queued or running, its
        row is the answer and no job is added (see :meth:`find_or_submit_segment`).
        """
        job, _ = self.find_or_submit_segment(
            dataset, model, name=name, trigger=trigger, enqueue=enqueue, **options
        )
        return job

    def find_or_submit_segment(
        self,
        dataset: str,
        model: str,
        *,
        name: str | None = None,
        trigger: str | None = None,
        enqueue: bool = True,
        **options: object,
    ) -> tuple[dict, bool]:
        """As :meth:`submit_segment`, and whether the job is new.

        Identical: the same dataset, model and settings, and the same name when one is
        asked for. Two identical requests at once (a double click) make one job.
        """
        catalog = self.catalog
        catalog.require_usable("dataset", dataset)
        model_row = catalog.require_usable("model", model)
        if trigger is not None and not isinstance(trigger, str):
            raise InputError(f"must be text, not {trigger!r}", where="trigger")
        settings = SegmentSettings.from_dict(options)
        if settings.objects is not None and isinstance(model_row.get("classes"), list):
            # a class the model does not have is refused now, not when the job ends
            object_classes(settings.objects, model_row["classes"])
        if name is not None:
            checked_name(name, where="name")
        same = _same_segmentation(dataset, model, settings.as_dict(), name)
        earlier = self._unfinished("segment", same)
        if earlier is not None:
            return earlier, False
        existing = {s["name"] for s in catalog.segmentations(dataset)}
        on_disk = self.root / SEGMENTATIONS_DIR / dataset
        if on_disk.is_dir():
            existing |= {p.name for p in on_disk.iterdir()}
        existing |= self._names_in_use("segment", "name", dataset=dataset)
        if name is not None:
            if name in existing:
                raise InputError(
                    f"segmentation {dataset}/{name} already exists or is being "
                    "made; choose another name",
                    where="name",
                )
        else:
            name = unique_name(model, existing)
        params = {
            "dataset": dataset,
            "model": model,
            "name": name,
            "settings": settings.as_dict(),
        }
        if trigger is not None:
            params["trigger"] = trigger
        return self._create_once("segment", params, enqueue, same)

    def _unfinished(self, kind: str, same: Callable[[dict], bool]) -> dict | None:
        """The oldest queued or running job of ``kind`` whose params ``same`` accepts."""
        for state in _ACTIVE:
            for job in self.catalog.jobs_in_state(state):
                if job["kind"] == kind and same(job.get("params") or {}):
                    return job
        return None

    def _create_once(
        self, kind: str, params: dict, enqueue: bool, same: Callable[[dict], bool]
    ) -> tuple[dict, bool]:
        """The unfinished job ``same`` accepts, or a new one started; and whether it is new."""
        row, created = self.catalog.create_job_once(kind, params, same=same)
        return (self._start(row, enqueue), True) if created else (row, False)

    def submit_train(
        self,
        *,
        annotation: str | None = None,
        dataset: str | None = None,
        base_model: str | None = None,
        name: str | None = None,
        enqueue: bool = True,
        **options: object,
    ) -> dict:
        """Queue a training run; return its job row.

        Training data: an annotation (``name`` or ``dataset/name``), or the ground truth of
        ``dataset`` when no annotation is given. ``base_model``: a model name is fine-tuned
        (its weights are the start); ``"scratch"`` trains a new U-Net; None takes the
        project's default model, or a new U-Net where the project has none, unless the options
        give the new network's shape (``dims``, ``feature_maps``, ``levels``, ``norm``): then a
        new U-Net of that shape, which a fine-tune could not train. A base model named with a
        shape other than its own is refused (a fine-tune keeps its base model's network). The
        other options are :class:`TrainingSettings` fields (``minutes``, ``epochs``,
        ``max_steps``, ``crop_size``, ...); none of ``minutes``, ``epochs`` and ``max_steps``
        means a few minutes. The row stores the settings (``params["settings"]``); the model goes to
        ``models/<name>/``. Settings whose crop size the network cannot take, or whose
        training step needs more memory than the device has free, are refused before any row
        is made (:func:`~biosegment.tasks.train_fit.require_training_fits`).
        """
        source_dataset, annotation_name = self._training_source(annotation, dataset)
        extras = {key: options.pop(key) for key in TRAIN_EXTRAS if key in options}
        asked = TrainingSettings.from_dict(options)
        # the shape of a new network, where the request gives one: the network it must train
        network = {key: getattr(asked, key) for key in NETWORK_FIELDS if key in options}
        base_model = self._base_model(base_model, source_dataset, network=network)
        # the row records the learning rate the run will start at (lower for a fine-tune)
        settings = asked.for_start(fine_tune=base_model is not None)
        # refused here, before a row exists: settings the network or the memory cannot take
        require_training_fits(
            self.catalog,
            self.config,
            settings,
            dataset=source_dataset,
            annotation=annotation_name,
            base_model=base_model,
        )
        if name is not None:
            checked_name(name, where="name")
            self._require_free_model_name(name)
        else:
            stamp = datetime.now(UTC).strftime("%Y%m%d")
            base = f"{base_model or 'unet'}-{source_dataset}-{stamp}"
            name = unique_name(base, self._model_names_taken())
        params = {
            "dataset": source_dataset,
            "annotation": annotation_name,
            "base_model": base_model,
            "name": name,
            "settings": settings.as_dict(),
            **extras,
        }
        return self._create("train", params, enqueue, model_name=name)

    def _base_model(self, requested: str | None, dataset: str, *, network: dict) -> str | None:
        """The model a fine-tune starts from: named, the project's default, or none.

        :param network: the new network's shape the request gives (``NETWORK_FIELDS`` it
            names). A fine-tune trains its base model's network, so a request with a shape and
            no base model trains a new network rather than the project's default model (the
            job must publish the network it asked for, on its first attempt as after a
            restart); a named base model whose network differs from that shape is refused.
        """
        catalog = self.catalog
        if requested == SCRATCH:
            return None
        if requested is not None:
            catalog.require_usable("model", requested, where="base_model")
            self._require_base_network(requested, network)
            return requested
        if network:
            return None
        project = catalog.dataset(dataset).get("project")
        if not project:
            return None
        try:
            default = catalog.project(project).get("default_model")
        except NotFoundError:
            return None
        if not default:
            return None
        try:
            catalog.require_usable("model", default, where="base_model")
        except (InputError, NotFoundError):
            return None  # a default model that is missing or broken: train a new network
        return default

    def _require_base_network(self, model: str, network: dict) -> None:
        """Refuse a network shape that ``model``, to be fine-tuned, does not have (where its
        card says its architecture)."""
        architecture = self.catalog.model(model).get("architecture") or {}
        for key, value in network.items():
            own = architecture.get(key)
            if own is not None and own != value:
                raise InputError(
                    f"a fine-tune trains the network of its base model {model!r}, whose "
                    f"{key} is {own}, not {value}; leave {key} out, or give base_model "
                    f"{SCRATCH!r} to train a new network",
                    where=key,
                )

    def _training_source(
        self, annotation: str | None, dataset: str | None
    ) -> tuple[str, str | None]:
        catalog = self.catalog
        if annotation is None:
            if dataset is None:
                raise InputError(
                    "give an annotation, or a dataset with ground truth", where="annotation"
                )
            row = catalog.dataset(dataset)
            if not row.get("ground_truth"):
                raise InputError(
                    f"dataset {dataset!r} has no ground truth (EM/{dataset}/labels/); "
                    "give an annotation to train from",
                    where="dataset",
                )
            return dataset, None
        if "/" in annotation:
            dataset_part, name_part = annotation.split("/", 1)
            if dataset is not None and dataset != dataset_part:
                raise InputError(
                    f"annotation {annotation!r} belongs to dataset {dataset_part!r},"
                    f" not {dataset!r}",
                    where="annotation",
                )
            dataset, annotation = dataset_part, name_part
        if dataset is not None:
            catalog.annotation(dataset, annotation)  # raises NotFoundError
            return dataset, annotation
        matches = [a for a in catalog.annotations() if a["name"] == annotation]
        if not matches:
            raise NotFoundError(f"no annotation {annotation!r}")
        if len(matches) > 1:
            choices = ", ".join(f"{a['dataset']}/{a['name']}" for a in matches)
            raise InputError(
                f"annotation name {annotation!r} is used in several datasets; "
                f"write dataset/name: {choices}",
                where="annotation",
            )
        return matches[0]["dataset"], annotation

    # -- managing --------------------------------------------------------------------------

    def cancel(self, job_id: str) -> dict:
        """Cancel a queued job now, or ask a running one to stop at its next batch."""
        return self.catalog.request_cancel(job_id)

    def retry(self, job_id: str, *, enqueue: bool = True) -> dict:
        """Submit a failed or cancelled job again, as a new job with the same parameters."""
        job, _ = self.find_or_retry(job_id, enqueue=enqueue)
        return job

    def find_or_retry(self, job_id: str, *, enqueue: bool = True) -> tuple[dict, bool]:
        """As :meth:`retry`, and whether the job is new.

        A retry is checked as a new request is: a train job's model name must be free (it is
        reserved again for the new job), and a segmentation identical to one queued or running
        answers with that one.
        """
        old = self.catalog.job(job_id)
        if old["state"] not in ("failed", "cancelled"):
            raise InputError(
                f"job {old['id']} is {old['state']}; only failed or cancelled jobs can be retried",
                where="job",
            )
        params = {k: v for k, v in (old.get("params") or {}).items() if k != "retry_of"}
        params["retry_of"] = old["id"]
        if old["kind"] == "segment":
            same = _same_segmentation(
                params.get("dataset"),
                params.get("model"),
                params.get("settings"),
                params.get("name"),
            )
            return self._create_once("segment", params, enqueue, same)
        model_name = None
        if old["kind"] == "train" and params.get("name"):
            model_name = str(params["name"])
            self._require_free_model_name(model_name)
        return self._create(old["kind"], params, enqueue, model_name=model_name), True

    def job(self, job_id: str) -> dict:
        return self.catalog.job(job_id)

    def jobs(self, **filters: Unpack[JobFilters]) -> list[dict]:
        """Jobs newest first; filters: ``state``, ``kind``, ``limit``."""
        unknown = set(filters) - {"state", "kind", "limit"}
        if unknown:
            raise InputError(
                "unknown filter; expected state, kind or limit", where=", ".join(sorted(unknown))
            )
        return self.catalog.jobs(**filters)

    def job_log(self, job_id: str) -> str:
        """The end of the job's log file ("" while it has not started)."""
        row = self.catalog.job(job_id)
        location = row.get("log_path")
        if not location:
            return ""
        path = self.catalog.path_of(row, "log_path")
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, 2)
                handle.seek(max(0, size - LOG_TAIL_BYTES))
                return handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- a train job's live actions ----------------------------------------------------------

    def _workspace(self, job_id: str) -> JobWorkspace:
        return JobWorkspace.of(self.config, job_id)

    def live_status(self, job_id: str) -> dict:
        """A train job's live preview: whether a snapshot of its weights exists, its step,
        epoch and age, and the latest validation figure with what it was measured on."""
        return train_actions.live_status(self.catalog, self._workspace(job_id))

    def live_snapshot(self, job_id: str) -> LiveSnapshot | None:
        """The latest weights a running train job saved (None: none yet, or it ended)."""
        return train_actions.live_snapshot(self.catalog, self._workspace(job_id))

    def training_steps(self, job_id: str, *, after: int = 0, cursor: int | None = None) -> dict:
        """One page of a train job's loss per optimizer step (the steps after step ``after``);
        ``more`` says whether to ask again, with ``after`` and the page's ``cursor``."""
        return train_actions.training_steps(
            self.catalog, self._workspace(job_id), after=after, cursor=cursor
        )

    def accept_training(self, job_id: str, *, name: str | None = None) -> dict:
        """Ask a running train job to stop now, publish its best weights as model ``name``
        (default: the name it was given) and segment its dataset with them.

        Return its row with ``accepted_name``.
        """
        workspace = self._workspace(job_id)
        job = train_actions.acceptable_job(self.catalog, workspace)
        name = name or job["params"]["name"]
        self._require_free_model_name(name, except_job=job["id"])
        row = train_actions.accept(self.catalog, workspace, name)
        return {**row, "accepted_name": name}

    def discard_training(self, job_id: str) -> dict:
        """Cancel a train job and have everything it made removed (its log stays)."""

        job, stopped = train_actions.discard(self.catalog, self._workspace(job_id))
        if stopped:
            # Nobody works on it any more: whoever runs jobs removes its files.
            queue_tasks(self.huey).discard_job(job["id"])
        return job


def _same_segmentation(
    dataset: object, model: object, settings: object, name: object
) -> Callable[[dict], bool]:
    """Whether a job's params ask for this segmentation (any name, when ``name`` is None)."""

    def same(params: dict) -> bool:
        return (
            params.get("dataset") == dataset
            and params.get("model") == model
            and params.get("settings") == settings
            and (name is None or params.get("name") == name)
        )

    return same

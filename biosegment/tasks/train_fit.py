"""Whether a train job's settings fit in the memory of the device it will run on.

:func:`require_training_fits` is asked twice for every train job: when it is submitted (by the
job service, for the web UI and the CLI alike), and again when a worker starts it, before any
data is read, since the memory free then may be less than when it was queued. It works out the
network the job will train (the base model's for a fine-tune, the settings' for a new one, with
one output per class the project or the annotation names) and the device (the settings' or the
configured one), and lets :func:`biosegment.engine.train_memory.require_training_fits` refuse
with what fits.
"""

from __future__ import annotations

from collections.abc import Iterable

from biosegment.catalog.store import Catalog
from biosegment.config import Config
from biosegment.engine.device_memory import device_memory
from biosegment.engine.train_memory import TrainingMemory, training_network
from biosegment.engine.train_memory import require_training_fits as require_step_fits
from biosegment.engine.train_settings import TrainingSettings
from biosegment.errors import NotFoundError

__all__ = ["require_training_fits"]


def require_training_fits(
    catalog: Catalog,
    config: Config,
    settings: TrainingSettings,
    *,
    dataset: str,
    annotation: str | None,
    base_model: str | None,
    exact: bool = False,
) -> TrainingMemory:
    """The job's memory estimate, or an input error naming the settings and saying what fits.

    :param exact: ask the device itself (torch) rather than the cheap answer for the CPU; a
        worker about to train has torch loaded anyway.
    :raises InputError: for a crop size the network cannot take, a device this machine lacks,
        or settings that need more memory than the device can give.
    """
    # a base model whose card gave no architecture: the settings' network is the best guess
    base = catalog.model(base_model).get("architecture") or None if base_model else None
    network = training_network(
        settings, base=base, num_classes=_class_count(catalog, dataset, annotation)
    )
    memory = device_memory(settings.device or config.engine.device, exact=exact)
    return require_step_fits(
        settings, memory, architecture=network, fine_tune=base_model is not None
    )


def _class_count(catalog: Catalog, dataset: str, annotation: str | None) -> int:
    """Classes the run's network will output as far as the catalog tells (at least 2): the
    annotation's and the project's."""
    classes: list = []
    if annotation is not None:
        classes += catalog.annotation(dataset, annotation).get("classes") or []
    project = catalog.dataset(dataset).get("project")
    if project:
        try:
            classes += catalog.project(project).get("classes") or []
        except NotFoundError:
            pass  # a dataset naming a project that is gone trains on its own classes
    return max([2, *_ids(classes)])


def _ids(classes: Iterable[object]) -> list[int]:
    """One more than each class id (the outputs a network needs to have it)."""
    return [
        int(entry["id"]) + 1
        for entry in classes
        if isinstance(entry, dict) and isinstance(entry.get("id"), int)
    ]

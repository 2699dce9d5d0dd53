"""Automatic segmentation: a new dataset is segmented with its project's default model.

The switch comes from ``setup.json`` (``auto_segment`` for the document or per project; the
catalog's project rows already hold the merged value) or from ``[automation] auto_segment`` in
``biosegment.toml``. A dataset is segmented automatically once per default model: when a
segmentation made with that model exists, or a segment job for the pair is queued, running or
finished, nothing more is submitted, so restarts and rescans never pile up duplicates. The
request itself (the trigger ``auto``, how it is submitted) is the rule of
:mod:`biosegment.tasks.segment_after` that an accepted fine-tune's segmentation follows too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from biosegment.tasks.segment_after import (
    SegmentRequest,
    segment_new_dataset,
    submit_segment_request,
)

__all__ = ["auto_segment_requests", "submit_auto_segmentations"]

log = logging.getLogger(__name__)


def _project_for(dataset: dict, projects: dict[str, dict]) -> dict | None:
    if dataset.get("project") in projects:
        return projects[dataset["project"]]
    if len(projects) == 1:  # one project: every dataset belongs to it
        return next(iter(projects.values()))
    return None


def auto_segment_requests(
    catalog, datasets: Iterable[str], *, config_switch: bool
) -> list[SegmentRequest]:
    """The segmentations to ask for now among ``datasets`` (names)."""
    projects = {p["name"]: p for p in catalog.projects() if p.get("state") == "ok"}
    models = {m["name"] for m in catalog.models() if m.get("state") == "ok"}
    wanted = []
    segment_jobs = None
    for name in datasets:
        try:
            dataset = catalog.dataset(name)
        except Exception:
            continue
        if dataset.get("state") != "ok":
            continue
        project = _project_for(dataset, projects)
        if project is None or not project.get("default_model"):
            continue
        if not (project.get("auto_segment") or config_switch):
            continue
        model = project["default_model"]
        if model not in models:
            log.warning(
                "auto-segment: project %s names model %s, which is not in the catalog",
                project["name"],
                model,
            )
            continue
        if any(s.get("model") == model for s in catalog.segmentations(name)):
            continue
        if segment_jobs is None:
            segment_jobs = [
                j
                for j in catalog.jobs(kind="segment", limit=100000)
                if j["state"] in ("queued", "running", "succeeded")
            ]
        if any(
            (j.get("params") or {}).get("dataset") == name
            and (j.get("params") or {}).get("model") == model
            for j in segment_jobs
        ):
            continue
        wanted.append(segment_new_dataset(name, model))
    return wanted


def submit_auto_segmentations(
    service, catalog, datasets: Iterable[str], *, config_switch: bool
) -> list[dict]:
    """Submit the segmentations :func:`auto_segment_requests` asks for; return their job rows."""
    submitted = []
    for request in auto_segment_requests(catalog, datasets, config_switch=config_switch):
        dataset, model = request.dataset, request.model
        try:
            job = submit_segment_request(service, request)
        except Exception as exc:  # one bad dataset must not stop the others
            log.warning("auto-segment of %s with %s not submitted: %s", dataset, model, exc)
            continue
        log.info("auto-segment: job %s segments %s with %s", job["id"], dataset, model)
        submitted.append(job)
    return submitted

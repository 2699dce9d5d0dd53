"""Audit entries for job actions, whoever takes them: the web API or the command line.

An entry names the action (``job.segment``, ``job.train``, ``job.retry``, ``job.cancel``), the
job id, and what the job runs on (dataset, model, annotation, base model, output name). The
command line records its actions as ``cli:<system account>``. Renaming, deleting (to the trash)
and restoring an annotation, segmentation or model get entries too (``item.rename``,
``item.delete``, ``item.restore``), naming the thing as ``<kind> [<dataset>/]<name>``. Writing the entry must never undo
or block the action itself, so a failure to write it is logged instead of raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from biosegment.accounts.store import open_accounts
from biosegment.system_service.spec import current_user

__all__ = ["job_detail", "submit_action", "record_cli_job_action", "record_cli_item_action"]

log = logging.getLogger(__name__)

_DETAIL_KEYS = ("dataset", "model", "annotation", "base_model", "name")


def job_detail(job: Mapping[str, Any]) -> dict[str, Any]:
    params = job.get("params") if isinstance(job.get("params"), Mapping) else {}
    return {key: params[key] for key in _DETAIL_KEYS if params.get(key)}


def submit_action(job: Mapping[str, Any]) -> str:
    """The audit action for a job just submitted: a retry, or a new job of its kind."""
    params = job.get("params") if isinstance(job.get("params"), Mapping) else {}
    return "job.retry" if params.get("retry_of") else f"job.{job.get('kind')}"


def record_cli_job_action(root: Path, action: str, job: Mapping[str, Any]) -> None:
    try:
        with open_accounts(root) as accounts:
            accounts.record(
                f"cli:{current_user()}", action, target=job.get("id"), detail=job_detail(job)
            )
    except Exception:
        log.exception("could not write the audit entry of %s %s", action, job.get("id"))


def record_cli_item_action(root: Path, action: str, target: str, detail: Mapping) -> None:
    """Record an ``item.*`` action the command line took (never raises)."""
    try:
        with open_accounts(root) as accounts:
            accounts.record(f"cli:{current_user()}", action, target=target, detail=dict(detail))
    except Exception:
        log.exception("could not write the audit entry of %s %s", action, target)

"""Record who launched, cancelled and retried which job, and who renamed, deleted (to the
trash) or restored which annotation, segmentation or model, as the API answers.

The job views stay about jobs; this hook runs after them and writes one audit row per
successful action (a launch only when it made a job), with the person (``local`` on 127.0.0.1), the job id, what it runs on, and
the client address. A failed audit write is logged and does not undo the job action.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from biosegment.accounts.job_actions import job_detail
from biosegment.webui.auth import current_user, request_accounts

__all__ = ["install_job_audit", "JOB_ACTIONS", "ITEM_ACTIONS"]

log = logging.getLogger(__name__)

#: Endpoint -> audit action.
JOB_ACTIONS = {
    "jobs_api.post_segment": "job.segment",
    "jobs_api.post_train": "job.train",
    "jobs_api.post_cancel": "job.cancel",
    "jobs_api.post_retry": "job.retry",
}

#: Actions that launch a job: only recorded when one was made (202), not when the answer is an
#: identical job already queued or running (200), which a double click or a second person gets.
LAUNCHES = {"job.segment", "job.train", "job.retry"}

#: Endpoint -> (audit action, kind of thing) for renames, deletes and restores.
ITEM_ACTIONS = {
    "annotations_api.post_annotation_rename": ("item.rename", "annotation"),
    "annotations_api.delete_annotation": ("item.delete", "annotation"),
    "items_api.post_segmentation_rename": ("item.rename", "segmentation"),
    "items_api.delete_segmentation": ("item.delete", "segmentation"),
    "items_api.post_model_rename": ("item.rename", "model"),
    "items_api.delete_model": ("item.delete", "model"),
    "items_api.post_trash_restore": ("item.restore", None),
}


def _item_entry(kind: str | None, document: dict) -> tuple[str, dict]:
    """The target (``<kind> [<dataset>/]<name>``) and detail of an item action."""
    args = dict(request.view_args or {})
    if kind is None:  # a restore: the trash entry says what it was
        item = (document.get("entry") or {}).get("item") or {}
        kind, args = item.get("kind") or "item", {"entry": args.get("entry"), **item}
    name = args.get("name") or args.get("model") or ""
    where = f"{args['dataset']}/" if args.get("dataset") else ""
    detail = {key: str(value) for key, value in args.items() if key != "origin" and value}
    if request.endpoint and request.endpoint.endswith("_rename"):
        detail["new_name"] = str(document.get("name") or "")
    elif isinstance(document.get("id"), str):
        detail["trash"] = document["id"]
    return f"{kind} {where}{name}", detail


def _record(response: Response) -> Response:
    endpoint = request.endpoint or ""
    if endpoint not in JOB_ACTIONS and endpoint not in ITEM_ACTIONS:
        return response
    if not 200 <= response.status_code < 300:
        return response
    document = response.get_json(silent=True) or {}
    if endpoint in JOB_ACTIONS:
        action = JOB_ACTIONS[endpoint]
        if action in LAUNCHES and response.status_code != 202:
            return response
        target = (request.view_args or {}).get("job_id") or document.get("id")
        detail = job_detail(document)
    else:
        action, kind = ITEM_ACTIONS[endpoint]
        target, detail = _item_entry(kind, document)
    user = current_user() or {}
    try:
        request_accounts().record(
            user.get("name") or "?",
            action,
            target=target,
            detail=detail,
            remote=request.remote_addr,
        )
    except Exception:
        log.exception("could not write the audit record of %s %s", action, target)
    return response


def install_job_audit(app: Flask) -> None:
    app.after_request(_record)

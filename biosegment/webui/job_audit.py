"""Record who launched, cancelled and retried which job, as the jobs API answers.

The job views stay about jobs; this hook runs after them and writes one audit row per
successful action, with the person (``local`` on 127.0.0.1), the job id, what it runs on, and
the client address. A failed audit write is logged and does not undo the job action.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request

from biosegment.accounts.job_actions import job_detail
from biosegment.webui.auth import current_user, request_accounts

__all__ = ["install_job_audit", "JOB_ACTIONS"]

log = logging.getLogger(__name__)

#: Endpoint -> audit action.
JOB_ACTIONS = {
    "jobs_api.post_segment": "job.segment",
    "jobs_api.post_train": "job.train",
    "jobs_api.post_cancel": "job.cancel",
    "jobs_api.post_retry": "job.retry",
}


def _record(response: Response) -> Response:
    action = JOB_ACTIONS.get(request.endpoint or "")
    if action is None or not 200 <= response.status_code < 300:
        return response
    job = response.get_json(silent=True) or {}
    job_id = (request.view_args or {}).get("job_id") or job.get("id")
    user = current_user() or {}
    try:
        request_accounts().record(
            user.get("name") or "?",
            action,
            target=job_id,
            detail=job_detail(job),
            remote=request.remote_addr,
        )
    except Exception:
        log.exception("could not write the audit record of %s %s", action, job_id)
    return response


def install_job_audit(app: Flask) -> None:
    app.after_request(_record)

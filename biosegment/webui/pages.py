"""The HTML pages: dashboard, dataset viewer and annotation editor, jobs, and model pages.

Pages are thin shells: the templates carry the layout and the names passed to them (escaped by
Jinja), and the page scripts under ``static/js`` fetch everything else from ``/api/v1``, so the
UI and the API never disagree.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from biosegment import __version__
from biosegment.engine.train_settings import DEFAULT_MINUTES, MAX_MINUTES
from biosegment.webui.context import web_state

__all__ = ["bp"]

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def _page_globals() -> dict:
    return {"version": __version__}


@bp.get("/")
def dashboard():
    return render_template("pages/dashboard.html", data_dir=str(web_state().root))


@bp.get("/datasets/<dataset>")
def viewer(dataset: str):
    web_state().catalog().dataset(dataset)  # unknown names get the 404 page
    return render_template(
        "pages/viewer.html",
        dataset=dataset,
        train_minutes=f"{DEFAULT_MINUTES:g}",
        train_minutes_max=f"{MAX_MINUTES:g}",
    )


@bp.get("/jobs")
def jobs():
    return render_template("pages/jobs.html")


@bp.get("/models/<model>")
def model(model: str):
    web_state().catalog().model(model)
    return render_template("pages/model.html", model=model)

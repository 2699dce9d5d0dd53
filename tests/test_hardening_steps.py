"""A train job's step curve is served a bounded page at a time, however long the run.

``GET /api/v1/jobs/<id>/steps?after=N`` answers at most ``STEPS_PER_PAGE`` steps, says whether
more follow and gives the cursor to ask for them with; without a cursor it finds step N by
bisecting the file. The files here are written by hand, as a running job writes them; the job
is queued through the API and never runs.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from biosegment.config import ServerConfig
from biosegment.engine.steps_pages import STEPS_PER_PAGE
from biosegment.tasks.workspace import JobWorkspace
from job_fixtures import TINY_MODEL, TRAIN_DATASET, make_folder
from webui_fixtures import Http, chromium_page, serve

LONG_RUN = 200_000


def _line(step: int, loss: float) -> str:
    return json.dumps({"step": step, "loss": loss, "elapsed_s": step / 100}) + "\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _, config = make_folder(tmp_path_factory.mktemp("steps"), demo=False, training=True)
    config = dataclasses.replace(config, server=ServerConfig(host="127.0.0.1", port=0))
    with serve(config) as server:
        http = Http(server.url)

        def train_job(steps_text: str) -> tuple[str, JobWorkspace]:
            reply = http.post(
                "/api/v1/jobs/train", json_body={"dataset": TRAIN_DATASET, "base_model": TINY_MODEL}
            )
            assert reply.status == 202, reply.body
            workspace = JobWorkspace.of(config, reply.json()["id"])
            workspace.steps_file.parent.mkdir(parents=True, exist_ok=True)
            workspace.steps_file.write_text(steps_text, encoding="utf-8")
            return f"/api/v1/jobs/{workspace.job_id}/steps", workspace

        yield http, train_job


@pytest.fixture(scope="module")
def long_run(site):
    http, train_job = site
    # a line of junk midway, as a disk that filled up might leave
    text = "".join(_line(step, 1.0 / step) for step in range(1, LONG_RUN // 2 + 1))
    text += "x" * 10_000 + "\n"
    text += "".join(_line(step, 1.0 / step) for step in range(LONG_RUN // 2 + 1, LONG_RUN + 1))
    path, _ = train_job(text)
    return http, path


def test_a_long_run_is_answered_a_bounded_page_at_a_time(long_run):
    http, path = long_run
    reply = http.get(path)
    assert reply.status == 200
    first = reply.json()
    assert [s["step"] for s in first["steps"]] == list(range(1, STEPS_PER_PAGE + 1))
    assert first["more"] is True and first["state"] == "queued"
    assert len(reply.body) < STEPS_PER_PAGE * 100  # the page, not the file (about 12 MB)
    second = http.get(f"{path}?after={STEPS_PER_PAGE}&cursor={first['cursor']}").json()
    assert second["steps"][0]["step"] == STEPS_PER_PAGE + 1
    assert len(second["steps"]) == STEPS_PER_PAGE and second["cursor"] > first["cursor"]


def test_following_the_cursor_gives_every_step_once(long_run):
    http, path = long_run
    after, cursor, seen, answers = 0, None, [], 0
    while True:
        query = f"?after={after}" + ("" if cursor is None else f"&cursor={cursor}")
        page = http.get(path + query).json()
        answers += 1
        assert len(page["steps"]) <= STEPS_PER_PAGE
        seen.extend(s["step"] for s in page["steps"])
        if page["steps"]:
            after = page["steps"][-1]["step"]
        cursor = page["cursor"]
        if not page["more"]:
            break
        assert answers <= LONG_RUN // STEPS_PER_PAGE + 2
    assert seen == list(range(1, LONG_RUN + 1))


def test_a_step_far_into_the_run_is_found_without_a_cursor(long_run):
    http, path = long_run
    middle = http.get(f"{path}?after=150000").json()
    assert [s["step"] for s in middle["steps"]] == list(range(150_001, 150_001 + STEPS_PER_PAGE))
    assert middle["steps"][0]["loss"] == pytest.approx(1.0 / 150_001)
    end = http.get(f"{path}?after={LONG_RUN - 2}").json()
    assert [s["step"] for s in end["steps"]] == [LONG_RUN - 1, LONG_RUN]
    assert end["more"] is False
    assert http.get(f"{path}?after={LONG_RUN}").json()["steps"] == []


def test_a_cursor_that_is_not_a_line_start_is_ignored_and_a_negative_one_refused(long_run):
    http, path = long_run
    stray = http.get(f"{path}?after=10&cursor=7").json()
    assert stray["steps"][0]["step"] == 11
    refused = http.get(f"{path}?cursor=-1")
    assert refused.status == 400 and refused.json()["field"] == "cursor"


def test_steps_repeated_by_a_resumed_run_replace_the_earlier_ones(site):
    http, train_job = site
    text = "".join(_line(step, 1.0) for step in range(1, 11))
    text += "".join(_line(step, 0.5) for step in range(6, 13))  # resumed from step 5
    path, _ = train_job(text)
    every = http.get(path).json()
    assert [(s["step"], s["loss"]) for s in every["steps"]] == [(s, 1.0) for s in range(1, 6)] + [
        (s, 0.5) for s in range(6, 13)
    ]
    later = http.get(f"{path}?after=8").json()
    assert [(s["step"], s["loss"]) for s in later["steps"]] == [(s, 0.5) for s in range(9, 13)]


def test_a_line_being_written_waits_for_the_next_page(site):
    http, train_job = site
    path, workspace = train_job(_line(1, 1.0) + _line(2, 0.9) + '{"step": 3, "lo')
    page = http.get(path).json()
    assert [s["step"] for s in page["steps"]] == [1, 2] and page["more"] is False
    with open(workspace.steps_file, "a", encoding="utf-8") as handle:
        handle.write('ss": 0.8}\n' + _line(4, 0.7))
    rest = http.get(f"{path}?after=2&cursor={page['cursor']}").json()
    assert [(s["step"], s["loss"]) for s in rest["steps"]] == [(3, 0.8), (4, 0.7)]


@pytest.mark.browser
def test_the_jobs_page_follows_the_pages_to_the_last_step(site):
    http, train_job = site
    total = 2 * STEPS_PER_PAGE + 123
    path, workspace = train_job("".join(_line(step, 1.0 / step) for step in range(1, total + 1)))
    with chromium_page() as browser:
        page = browser.page
        page.goto(f"{http.base}/jobs#{workspace.job_id}")
        page.wait_for_selector(f"#job-detail[data-job='{workspace.job_id}']")
        page.wait_for_function(
            f"() => document.getElementById('job-steps-chart').dataset.steps === '{total}'"
        )
        assert browser.errors == []

"""CLI commands about jobs: ``segment``, ``train``, ``jobs``, ``cancel``, ``retry``.

``segment`` and ``train`` queue a job for the daemon (or workers) of the data folder. With
``--wait`` they follow it with a progress bar and ETA and exit with its outcome: 0 succeeded,
1 failed, 3 cancelled, 130 interrupted (the job is re-queued). When nothing consumes the queue
(no daemon, no worker), ``--wait`` runs the job right here, with the same job row, progress
and outputs as a daemon would produce.
"""

from __future__ import annotations

import sys
import threading
import time

import click

from biosegment.cli.context import AppContext, emit_json, pass_app
from biosegment.cli.root import main
from biosegment.cli.segment_options import segment_options
from biosegment.cli.tables import print_table
from biosegment.cli.train_options import training_options

__all__ = ["segment", "train", "jobs", "cancel", "retry", "EXIT_CODES", "follow_job"]

JSON_HELP = "Print machine-readable JSON instead of text."
WAIT_HELP = (
    "Follow the job with a progress bar and exit with its outcome (0 succeeded, "
    "1 failed, 3 cancelled); without a daemon the job runs in this process."
)
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 3}
EXIT_INTERRUPTED = 130
_POLL_S = 0.25
_PIPE_LINE_S = 10.0  # in a pipe: the longest wait between lines while the progress moves
_BAR_WIDTH = 30


def _format_seconds(seconds) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(float(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def _progress_line(row: dict) -> str:
    fraction = float(row.get("progress") or 0.0)
    filled = int(round(fraction * _BAR_WIDTH))
    bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
    message = (row.get("message") or "")[:60]
    return (
        f"[{bar}] {fraction * 100:5.1f}%  ETA {_format_seconds(row.get('eta'))}  "
        f"{row['state']:<9} {message}"
    )


def follow_job(service, job_id: str, *, done: threading.Event | None = None) -> dict:
    """Show the job's progress until it ends (or ``done`` is set); return its last row."""
    interactive = sys.stderr.isatty()
    shown = None
    shown_progress, last_line = None, 0.0
    while True:
        row = service.job(job_id)
        if interactive:
            click.echo("\r" + _progress_line(row).ljust(100), nl=False, err=True)
        else:
            # In a pipe or log file: one line per change of state or message, or per tenth,
            # and, for a long job, its progress every _PIPE_LINE_S seconds while it moves (a
            # log that said 0.0 % for half an hour at 7.6 % looked stuck).
            progress = round(float(row.get("progress") or 0), 3)
            key = (row["state"], row.get("message"), int(progress * 10))
            moved = progress != shown_progress and time.monotonic() - last_line >= _PIPE_LINE_S
            if key != shown or moved:
                click.echo(_progress_line(row), err=True)
                shown, shown_progress, last_line = key, progress, time.monotonic()
        if row["state"] in EXIT_CODES or (done is not None and done.is_set()):
            break
        time.sleep(_POLL_S)
    if interactive:
        click.echo("", err=True)
    return service.job(job_id)


def _queue_has_consumers(config) -> bool:
    from biosegment.folder_lock import daemon_running, live_runners

    if daemon_running(config.data_dir):
        return True
    return any(
        str(owner.get("identity", "")).endswith((":worker", ":daemon"))
        for owner in live_runners(config.data_dir)
    )


def _run_here(app: AppContext, service, job: dict) -> dict:
    """Run a created job in this process while the main thread shows its progress."""
    from biosegment.tasks.runner import JobRunner

    config = app.config
    # Immediate: the job's blocks run in this process too; interrupted work goes to the queue.
    runner = JobRunner(config, role="cli", huey=service.huey, immediate=True)
    done = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            runner.run_job(job["id"])
        except BaseException as exc:  # shown by the main thread
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=work, name=f"job-{job['id']}", daemon=True)
    thread.start()
    try:
        follow_job(service, job["id"], done=done)
        thread.join()
    except KeyboardInterrupt:
        click.echo(
            "\ninterrupted: stopping at the next batch; the job is re-queued "
            f"(biosegment cancel {job['id']} drops it)",
            err=True,
        )
        runner.stop_event.set()
        thread.join()
        runner.close()
        raise SystemExit(EXIT_INTERRUPTED) from None
    runner.close()
    if failure:
        raise failure[0]
    return service.job(job["id"])


def _submit_and_maybe_wait(app: AppContext, submit, *, wait: bool, as_json: bool) -> None:
    from biosegment.catalog import refresh
    from biosegment.folder_lock import daemon_running
    from biosegment.tasks import JobService

    config = app.config
    app.require_root()
    service = JobService(config)
    try:
        if not daemon_running(config.data_dir):
            # Nobody keeps the catalog current: catch up with the folder (cheap when unchanged),
            # so a stack copied in a moment ago can be named.
            refresh(
                service.catalog,
                config.data_dir,
                forget_after=config.watch.forget_after_seconds,
            )
        in_process = wait and not _queue_has_consumers(config)
        job = submit(service, enqueue=not in_process)
        from biosegment.accounts.job_actions import record_cli_job_action, submit_action

        record_cli_job_action(config.data_dir, submit_action(job), job)  # who launched it
        if not as_json:
            where = "running here (no daemon is serving this folder)" if in_process else "queued"
            click.echo(f"job {job['id']} ({job['kind']}) {where}", err=True)
        if not wait:
            if as_json:
                emit_json(job)
                return
            click.echo(job["id"])  # alone on stdout, for `id=$(biosegment segment ...)`
            if not _queue_has_consumers(config):
                click.echo(
                    "no daemon or worker serves this data folder yet: start one with "
                    "`biosegment run` or `biosegment worker`",
                    err=True,
                )
            return
        row = _run_here(app, service, job) if in_process else follow_job(service, job["id"])
        if as_json:
            emit_json(row)
        else:
            _describe_end(row)
        raise SystemExit(EXIT_CODES.get(row["state"], 1))
    finally:
        service.close()


def _describe_end(row: dict) -> None:
    state = row["state"]
    if state == "succeeded":
        result = row.get("result") or {}
        target = result.get("location") or ""
        click.echo(f"job {row['id']} succeeded{': ' + target if target else ''}")
    elif state == "failed":
        click.echo(f"job {row['id']} failed: {row.get('message')}", err=True)
    else:
        click.echo(f"job {row['id']} {state}: {row.get('message') or ''}", err=True)


@main.command()
@click.argument("dataset")
@click.option("--model", "-m", required=True, help="Name of the model to segment with.")
@click.option(
    "--name",
    default=None,
    help="Name of the result (segmentations/DATASET/NAME/); default: the model's name, "
    "made unique.",
)
@segment_options
@click.option(
    "--device",
    default=None,
    help="Compute device (auto, cpu, cuda, cuda:N, mps); default: [engine] device.",
)
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def segment(
    app: AppContext,
    dataset: str,
    model: str,
    name: str | None,
    device: str | None,
    wait: bool,
    as_json: bool,
    **settings,
) -> None:
    """Segment DATASET with a model; the labels go to segmentations/DATASET/NAME/.

    The segmentation options (from --block-z to --output-format) are those of the API's
    segment request; each left out is chosen for the volume and the machine.
    """
    options = {key: value for key, value in settings.items() if value is not None}
    if device is not None:
        options["device"] = device
    _submit_and_maybe_wait(
        app,
        lambda service, enqueue: service.submit_segment(
            dataset, model, name=name, enqueue=enqueue, trigger="cli", **options
        ),
        wait=wait,
        as_json=as_json,
    )


@main.command()
@click.option(
    "--annotation", "-a", default=None, help="Annotation to train from: NAME or DATASET/NAME."
)
@click.option(
    "--dataset",
    "-d",
    default=None,
    help="Dataset whose ground truth to train from (or that the annotation belongs to).",
)
@click.option(
    "--base-model",
    default=None,
    help="Model to fine-tune (its weights are the start), or 'scratch' for a new U-Net; "
    "default: the project's default model, else a new U-Net.",
)
@training_options
@click.option("--name", default=None, help="Name of the new model (models/NAME/).")
@click.option("--device", default=None, help="Compute device (auto, cpu, cuda, cuda:N, mps).")
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def train(
    app: AppContext,
    annotation: str | None,
    dataset: str | None,
    base_model: str | None,
    name: str | None,
    device: str | None,
    wait: bool,
    as_json: bool,
    **settings,
) -> None:
    """Train a model from an annotation or a dataset's ground truth.

    With --base-model the model is fine-tuned from that model's weights. The run is bounded by
    --minutes (3 by default), --epochs or --max-steps. Per-epoch metrics go to the job
    (biosegment jobs JOB_ID) and to TensorBoard logs in models/NAME/logs/.
    """
    options = {key: value for key, value in settings.items() if value is not None}
    if device is not None:
        options["device"] = device
    _submit_and_maybe_wait(
        app,
        lambda service, enqueue: service.submit_train(
            annotation=annotation,
            dataset=dataset,
            base_model=base_model,
            name=name,
            enqueue=enqueue,
            trigger="cli",
            **options,
        ),
        wait=wait,
        as_json=as_json,
    )


def _job_row(row: dict) -> list[str]:
    params = row.get("params") or {}
    subject = params.get("dataset") or ""
    if row["kind"] == "segment":
        subject = f"{subject} with {params.get('model')}"
    elif row["kind"] == "train":
        subject = f"{params.get('name')} from {params.get('annotation') or 'ground truth'}"
    eta = _format_seconds(row.get("eta")) if row["state"] == "running" else ""
    return [
        row["id"],
        row["kind"],
        row["state"],
        f"{float(row.get('progress') or 0) * 100:.0f}%",
        eta,
        subject,
        (row.get("message") or "")[:50],
        (row.get("created_at") or "")[:19],
    ]


@main.command()
@click.argument("job_id", required=False)
@click.option(
    "--state",
    type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]),
    default=None,
    help="Only jobs in this state.",
)
@click.option(
    "--kind", type=click.Choice(["segment", "train"]), default=None, help="Only jobs of this kind."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show at most this many jobs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def jobs(
    app: AppContext,
    job_id: str | None,
    state: str | None,
    kind: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List jobs, or show one job (JOB_ID or a unique prefix of it) with its log."""
    from biosegment.tasks import JobService

    app.require_root()
    service = JobService(app.config)
    try:
        if job_id:
            row = service.job(job_id)
            if as_json:
                emit_json({**row, "log": service.job_log(row["id"])})
                return
            for key in (
                "id",
                "kind",
                "state",
                "progress",
                "eta",
                "message",
                "worker",
                "attempts",
                "created_at",
                "started_at",
                "finished_at",
                "params",
                "result",
            ):
                click.echo(f"{key + ':':<13}{'' if row.get(key) is None else row.get(key)}")
            for record in row.get("metrics") or []:
                click.echo(
                    f"epoch {record.get('epoch')}: "
                    + ", ".join(
                        f"{k}={v:.4g}"
                        for k, v in record.items()
                        if isinstance(v, float) and k != "epoch"
                    )
                )
            log = service.job_log(row["id"])
            if log:
                click.echo("log:")
                click.echo(log.rstrip())
            return
        rows = service.jobs(state=state, kind=kind, limit=limit)
        if as_json:
            emit_json(rows)
            return
        print_table(
            ["ID", "KIND", "STATE", "DONE", "ETA", "WHAT", "MESSAGE", "CREATED"],
            [_job_row(r) for r in rows],
            empty="No jobs. Start one with `biosegment segment` or `biosegment train`.",
        )
    finally:
        service.close()


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def cancel(app: AppContext, job_id: str, as_json: bool) -> None:
    """Cancel a job: a queued one at once, a running one at its next batch."""
    from biosegment.tasks import JobService

    app.require_root()
    service = JobService(app.config)
    try:
        row = service.cancel(job_id)
        from biosegment.accounts.job_actions import record_cli_job_action

        record_cli_job_action(app.root, "job.cancel", row)  # who cancelled it
    finally:
        service.close()
    if as_json:
        emit_json(row)
    elif row["state"] == "running":
        click.echo(f"job {row['id']} will stop at its next batch")
    else:
        click.echo(f"job {row['id']} is {row['state']}")


@main.command()
@click.argument("job_id")
@click.option("--wait", is_flag=True, help=WAIT_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def retry(app: AppContext, job_id: str, wait: bool, as_json: bool) -> None:
    """Run a failed or cancelled job again, as a new job with the same parameters."""

    def resubmit(service, enqueue):
        return service.retry(job_id, enqueue=enqueue)

    _submit_and_maybe_wait(app, resubmit, wait=wait, as_json=as_json)

"""A long schemathesis fuzz run of the JSON API against its own OpenAPI document.

The test suite runs a bounded version (``tests/test_api_fuzz.py``, a dozen examples per
operation); this runs as many as asked, in both modes: 127.0.0.1 without a login, and 127.0.0.2
with accounts and an admin's API token. It builds a demo data folder (the demo dataset, an
untrained model, an annotation and a queued job), serves it with the daemon's waitress server,
and for every operation checks that no answer is a 500 and that each answer's status, content
type and body match the document. Prints, per operation, how many requests got which status,
then every failure; exits with status 1 when there was one.

    python benchmarks/fuzz_api.py --examples 500
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from biosegment.accounts import open_accounts
from biosegment.catalog import open_catalog, refresh
from biosegment.config import ServerConfig, load_config
from biosegment.datafolder import DEMO_DATASET, init_data_folder
from biosegment.webui.server import create_server

__all__ = ["main", "build_folder", "fuzz_server"]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def build_folder(root: Path) -> tuple[str, str]:
    """A demo data folder with a model, an annotation, a queued job and an admin; returns
    ``(job id, admin API token)``."""
    import torch

    from biosegment.engine import ModelCard, UNet, save_model

    init_data_folder(root, demo=True)
    torch.manual_seed(0)
    model = UNet(num_classes=2, feature_maps=4, levels=2, norm="none")
    save_model(
        model,
        ModelCard(
            name="tiny",
            architecture=dict(model.config),
            classes=[{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}],
        ),
        root / "models" / "tiny",
    )
    annotation = root / "annotations" / DEMO_DATASET / "scribbles"
    annotation.mkdir(parents=True)
    (annotation / "annotation.json").write_text(
        '{"classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}]}'
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        job = catalog.create_job("segment", {"dataset": DEMO_DATASET, "model": "tiny"})
    with open_accounts(root) as accounts:
        accounts.add_user("fuzzer", "admin", "a long enough password")
        token, _ = accounts.create_token("fuzzer", "fuzz")
    return job["id"], token


def _config(job_id: str):
    known = {
        "datasets": [DEMO_DATASET],
        "models": ["tiny"],
        "names": ["scribbles"],
        "jobs": [job_id],
        "small": [0, 1, 2],
    }
    bindings = {
        "path.dataset": "datasets",
        "path.model": "models",
        "path.name": "names",
        "path.job_id": "jobs",
        "path.index": "small",
        "path.z": "small",
        "path.level": "small",
        "path.row": "small",
        "path.col": "small",
        "body.dataset": "datasets",
        "body.model": "models",
        "body.annotation": "names",
    }
    return schemathesis.config.SchemathesisConfig.from_dict(
        {
            "dictionaries": {name: {"values": values} for name, values in known.items()},
            "parameters": {
                key: {"dictionary": name, "probability": 0.7} for key, name in bindings.items()
            },
        }
    )


def fuzz_server(
    url: str, job_id: str, examples: int, headers: dict | None
) -> tuple[collections.Counter, list[str]]:
    schema = schemathesis.openapi.from_url(
        url + "api/v1/openapi.json", config=_config(job_id), headers=headers or {}
    )
    statuses: collections.Counter = collections.Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case, label=label):
            response = case.call(headers=headers)
            statuses[(label, response.status_code)] += 1
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as failure:  # report every operation, not just the first broken one
            failures.append(f"{label}:\n{failure}")
    return statuses, failures


def _serve(config):
    server = create_server(config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples",
        type=int,
        default=200,
        help="Hypothesis examples per operation and mode (default 200).",
    )
    args = parser.parse_args(argv)
    all_failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        job_id, token = build_folder(root)
        base = load_config(data_dir=root, env={}, cwd=root)
        modes = [
            ("127.0.0.1 without accounts", "127.0.0.1", None),
            ("127.0.0.2 with accounts", "127.0.0.2", {"Authorization": f"Bearer {token}"}),
        ]
        for title, host, headers in modes:
            config = dataclasses.replace(base, server=ServerConfig(host=host, port=0))
            server, thread = _serve(config)
            started = time.perf_counter()
            try:
                statuses, failures = fuzz_server(server.url, job_id, args.examples, headers)
            finally:
                server.close()
                thread.join(10)
            seconds = time.perf_counter() - started
            print(
                f"\n== {title}: {sum(statuses.values())} requests in {seconds:.0f} s, "
                f"{len(failures)} failing operation(s)"
            )
            by_operation: dict[str, dict[int, int]] = collections.defaultdict(dict)
            for (label, status), count in statuses.items():
                by_operation[label][status] = count
            for label in sorted(by_operation):
                counts = ", ".join(f"{s}: {n}" for s, n in sorted(by_operation[label].items()))
                print(f"  {label:<86} {counts}")
            all_failures += [f"[{title}] {failure}" for failure in failures]
    for failure in all_failures:
        print("\n" + failure)
    return 1 if all_failures else 0


if __name__ == "__main__":
    sys.exit(main())

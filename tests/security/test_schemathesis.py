"""Schemathesis against a live ``dlp serve``: every operation in its OpenAPI document,
with a valid token and real objects to name, generated from the schema (examples,
boundary coverage, fuzzing, stateful sequences over the document's links).

Checks: no 5xx, every status code, content type, header and body as documented, 405s
naming the allowed methods, and no answer without authentication where one is required.
Left out: ``positive_data_acceptance`` and ``negative_data_rejection``, which expect every
schema-valid request accepted: dlp refuses some on purpose for rules a JSON schema cannot
state (an unknown file type, a search range whose low exceeds its high, an id that does
not exist), with the contract's 4xx, which the checks above still hold to the schema.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import register_account
from tests.factories import make_served
from tests.live import live_server

EXAMPLES_PER_OPERATION = 5
SEED = 20261127


def test_every_operation_conforms_to_the_openapi_document(tmp_path: Path) -> None:
    """Fuzz every documented operation of the live app with a valid token: no 5xx, and every
    answer (status, content type, headers, body) is one the document describes."""
    with live_server(tmp_path / "data") as server, httpx.Client(base_url=server.url) as client:
        owner = register_account(client)  # type: ignore[arg-type]
        served = make_served(client, owner)  # type: ignore[arg-type]
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            "[parameters]\n"
            f'model_id = "{served.model["id"]}"\n'
            f'job_id = "{served.model["job_id"]}"\n'
            f'dataset_id = "{served.model["dataset_id"]}"\n'
            f'name = "{served.name}"\n'
        )
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(config),
                "run",
                f"{server.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {owner.access_token}",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance,negative_data_rejection",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                str(SEED),
                "--no-shrink",
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=420,
            cwd=tmp_path,
        )
        report = run.stdout[-6000:] + run.stderr[-2000:]
        assert run.returncode == 0, f"{report}\n--- server log ---\n{server.log_tail()}"
        assert "Tested: " in run.stdout, report

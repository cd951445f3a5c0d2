"""Many hosts: the API and two workers as separate processes, each with an empty scratch
directory of its own (its ``DLP_DATA_DIR`` and its ``TMPDIR``), sharing only PostgreSQL,
Redis and an S3 bucket, as on three machines.

Training jobs, a tuning study and a batch prediction go through the live API; they must run
on both workers, the API must serve predictions and downloads of what the workers made, and
afterwards no scratch directory may hold a dataset, model or checkpoint file: nothing
depends on a shared local disk.
"""

from __future__ import annotations

import csv
import getpass
import io
import secrets
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import REDIS_URL, Account, installation, register_account
from tests.factories import ROWS, small_job_body, submit_ok, tiny_dataset, wait_for_job
from tests.live import LiveServer, live_server, start_worker, stop_process
from tests.s3 import AWS_TEST_ENV, new_bucket, s3_client
from tests.tuning.test_study_api import STUDIES, study_body

pytestmark = pytest.mark.scaleout

# A Redis database of its own: the session's worker listens on the test Redis's database,
# fresh installations use 14 and the S3 shape 13, so none of them takes these hints.
MANY_HOSTS_REDIS_DB = 10
STORE_PREFIX = "dlp"
WORKERS = ("worker-a", "worker-b")
DATASET_ROWS = 200
JOB_SECONDS = 60.0
STOP_SECONDS = 10.0
# What a host may keep on its own disk after the run, relative to its scratch directory (each
# process leaves some of these). Nothing of dlp's own: with DLP_SECRET_KEY set, a Redis broker
# and an S3 store, no process writes a key file, a queue folder or a file store there.
LOCAL_ONLY = {
    # The host's TMPDIR, made by the test (a real host has one). Every temporary file dlp
    # and its libraries open there (upload spools, archives, quantization) is gone by now.
    "tmp",
    # ONNX Runtime's telemetry session file: a first-launch time and a random device id.
    "tmp/.ses",
    # The empty cache folder torch's compiler makes when a worker's pool process builds its
    # first optimizer (dlp compiles nothing: a kernel cached there would be a file inside).
    f"tmp/torchinductor_{getpass.getuser()}",
}


def _host_env(shared: dict[str, str], scratch: Path) -> dict[str, str]:
    """The environment of one host's process: the shared services, its own disk."""
    return {**shared, "DLP_DATA_DIR": str(scratch), "TMPDIR": str(scratch / "tmp")}


def _empty_scratch(folder: Path) -> Path:
    (folder / "tmp").mkdir(parents=True)
    return folder


def _local_files(scratch: Path) -> list[str]:
    """Every file and folder under ``scratch`` the run left, relative to it."""
    return sorted(str(path.relative_to(scratch)) for path in scratch.rglob("*"))


def _start_hosts(
    stack: ExitStack,
    envs: dict[str, dict[str, str]],
    logs: Path,
    server: AbstractContextManager[LiveServer],
) -> tuple[LiveServer, dict[str, subprocess.Popen[bytes]]]:
    """Start the workers (in threads) while the API starts here; every process that
    started is stopped when ``stack`` closes, whatever failed."""
    pool = ThreadPoolExecutor(len(envs))
    futures = {
        name: pool.submit(start_worker, env, logs / f"{name}.log", "--concurrency", "1")
        for name, env in envs.items()
    }
    try:
        live = stack.enter_context(server)
    finally:
        pool.shutdown(wait=True)
        for future in futures.values():
            if future.exception() is None:
                stack.callback(stop_process, future.result())
    return live, {name: future.result() for name, future in futures.items()}


def _process_tree(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    root = psutil.Process(process.pid)
    return [root, *root.children(recursive=True)]


def _stored_folders(bucket: str, organization_id: str) -> set[str]:
    """The kinds of file the organization has in the bucket (datasets, models, ...)."""
    prefix = f"{STORE_PREFIX}/orgs/{organization_id}/"
    listed = s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"][len(prefix) :].split("/", 1)[0] for item in listed.get("Contents", [])}


def _study(dataset: str) -> dict[str, Any]:
    """A study of two trials of two epochs each, run at once."""
    training = {"epochs": 2, "batch_size": 32, "early_stopping_patience": 0}
    return study_body(dataset, n_trials=2, parallelism=2, training=training)


def _run_jobs(http: httpx.Client, account: Account) -> dict[str, Any]:
    """Two training jobs, a study of two parallel trials and a batch prediction, all
    waited for; the finished jobs by role."""
    dataset = tiny_dataset(http, account, rows=DATASET_ROWS)
    trainings = [submit_ok(http, account, small_job_body(dataset)) for _ in range(2)]
    created = http.post(STUDIES, headers=account.headers, json=_study(dataset))
    assert created.status_code == 202, created.text
    first = wait_for_job(http, account, trainings[0], timeout=JOB_SECONDS)
    assert first["status"] == "succeeded", first
    submitted = http.post(
        f"/api/v1/models/{first['model_id']}/batch-predictions",
        headers=account.headers,
        json={"dataset_id": dataset, "format": "csv"},
    )
    assert submitted.status_code == 202, submitted.text
    return {
        "training": [first, wait_for_job(http, account, trainings[1], timeout=JOB_SECONDS)],
        "study": wait_for_job(
            http,
            account,
            created.json()["id"],
            timeout=JOB_SECONDS,
            until={"succeeded", "failed", "cancelled"},
            collection=STUDIES,
        ),
        "batch": wait_for_job(
            http,
            account,
            submitted.json()["id"],
            timeout=JOB_SECONDS,
            collection="/api/v1/batch-predictions",
        ),
    }


def test_api_and_two_workers_share_only_postgres_redis_and_s3_never_a_local_disk(
    s3_endpoint: str, tmp_path: Path
) -> None:
    bucket = new_bucket()
    hosts = {name: _empty_scratch(tmp_path / "hosts" / name) for name in ("api", *WORKERS)}
    logs = tmp_path / "logs"
    logs.mkdir()
    with installation(
        "scaleout",
        tmp_path / "installer",
        redis_url=f"{REDIS_URL.rsplit('/', 1)[0]}/{MANY_HOSTS_REDIS_DB}",
        storage_url=f"s3://{bucket}/{STORE_PREFIX}",
        job_heartbeat_seconds=0.5,
        job_lease_seconds=3.0,
    ) as deployed:
        shared = {
            **deployed.env,
            **AWS_TEST_ENV,
            "AWS_ENDPOINT_URL": s3_endpoint,
            # Every API process must sign tokens alike: no key file on any one disk.
            "DLP_SECRET_KEY": secrets.token_urlsafe(48),
        }
        with ExitStack() as stack:
            server, workers = _start_hosts(
                stack,
                {name: _host_env(shared, hosts[name]) for name in WORKERS},
                logs,
                live_server(
                    hosts["api"],
                    "--no-worker",
                    env=_host_env(shared, hosts["api"]),
                    log_path=logs / "api.log",
                ),
            )
            http = stack.enter_context(httpx.Client(base_url=server.url, timeout=30.0))
            account = register_account(http)
            jobs = _run_jobs(http, account)

            trainings, study, batch = jobs["training"], jobs["study"], jobs["batch"]
            assert [job["status"] for job in trainings] == ["succeeded"] * 2, trainings
            assert study["status"] == "succeeded", study
            assert batch["status"] == "succeeded", batch
            detail = http.get(f"{STUDIES}/{study['id']}", headers=account.headers).json()
            ran_on = {job["worker"] for job in [*trainings, *detail["trials"], batch]}
            host = socket.gethostname()
            assert ran_on == {f"dlp-{process.pid}@{host}" for process in workers.values()}

            downloaded = http.get(batch["output"]["download_url"], headers=account.headers)
            assert downloaded.status_code == 200, downloaded.text
            output_rows = list(csv.DictReader(io.StringIO(downloaded.text)))
            assert len(output_rows) == batch["output"]["rows"] == DATASET_ROWS

            # The API loads a model a worker trained from the shared stores (the bucket, or
            # Redis's model-file cache), never from a disk.
            model_id = trainings[0]["model_id"]
            predicted = http.post(
                f"/api/v1/models/{model_id}/predict", headers=account.headers, json={"inputs": ROWS}
            )
            assert predicted.status_code == 200, predicted.text
            assert len(predicted.json()["predictions"]) == len(ROWS)
            stored = _stored_folders(bucket, account.organization_id)
            assert {"datasets", "models", "batch-predictions"} <= stored, stored

            processes = [server.process, *workers.values()]
            trees = [member for process in processes for member in _process_tree(process)]
            with ThreadPoolExecutor(len(processes)) as pool:  # each takes a second or two
                list(pool.map(stop_process, processes))
            _gone, alive = psutil.wait_procs(trees, timeout=STOP_SECONDS)
            assert not alive, f"processes outlived their stop: {alive}"

    left = {name: _local_files(scratch) for name, scratch in hosts.items()}
    assert not [path for files in left.values() for path in files if "orgs" in Path(path).parts]
    assert all(set(files) <= LOCAL_ONLY for files in left.values()), left

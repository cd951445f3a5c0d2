"""The worker's side of a batch prediction: stream the dataset through the model.

``dlp.jobs.runner`` claims the job under a lease and decides what a failure
means. The dataset is read, predicted and written one chunk of
``DLP_BATCH_CHUNK_ROWS`` rows at a time, so memory stays flat however large it
is; the output goes straight into the file store under a key of this attempt
and becomes the job's output only in the transaction that marks it succeeded.
A retried attempt starts again from the first row.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import structlog

from dlp.batch import service
from dlp.batch.kind import BATCH_PREDICTIONS
from dlp.batch.models import BatchPrediction
from dlp.batch.output import OutputWriter, prediction_table
from dlp.datasets import service as dataset_service
from dlp.datasets.models import Dataset
from dlp.db import session_scope, utcnow
from dlp.errors import DLPError
from dlp.jobs import lifecycle
from dlp.jobs.lease import Lease
from dlp.jobs.runner import JobCancelled, run_next_job
from dlp.ml.onnx_serving import load_serving_predictor
from dlp.platform import Platform
from dlp.queue import JobHint
from dlp.registry import repository as registry_repository
from dlp.registry import service as registry_service
from dlp.registry.models import Model

log = structlog.get_logger(__name__)
PROGRESS_SECONDS = 1.0


@dataclass(frozen=True)
class _Spec:
    job_id: uuid.UUID
    organization_id: uuid.UUID
    output_format: str
    include_inputs: bool
    text_column: str | None


def run_next_batch_prediction(
    platform: Platform, *, worker: str, hint: JobHint | None = None
) -> uuid.UUID | None:
    """Claim the best waiting batch prediction and run it to a terminal status (or back
    to the queue after a transient fault). Returns its id; None when none was waiting."""
    return run_next_job(
        platform,
        BATCH_PREDICTIONS,
        worker=worker,
        work=lambda lease: _run(platform, lease),
        hint=hint,
    )


def _run(platform: Platform, lease: Lease[BatchPrediction]) -> None:
    spec, model, dataset = _load(platform, lease)
    predictor = load_serving_predictor(
        registry_service.load_model_files(platform.store, model),
        engine=platform.settings.serving_engine,
        int8=model.serving_variant == "int8",
    )
    log.info(
        "batch.started",
        job_id=str(spec.job_id),
        model_id=str(model.id),
        rows=dataset.n_rows,
        engine=predictor.engine,
    )
    key = f"{service.output_prefix(spec.organization_id, spec.job_id)}/{lease.token}"
    key = f"{key}.{spec.output_format}"
    progress = _Progress(platform, lease)
    limits = dataset_service.archive_limits(platform.settings)
    with (
        dataset_service.dataset_tables(
            platform.store, dataset, rows=platform.settings.batch_chunk_rows, limits=limits
        ) as tables,
        OutputWriter(platform.store.open_writer(key), spec.output_format) as output,
    ):
        for table in tables:
            progress.check()
            prediction = predictor.predict_table(_model_inputs(table, spec))
            output.write(
                prediction_table(
                    output.rows,
                    _kept_inputs(table, spec),
                    prediction.predictions,
                    prediction.probabilities,
                    predictor.classes,
                )
            )
            progress.report(output.rows)
        output.commit()
    try:
        _succeed(platform, lease, key, rows=output.rows, size_bytes=output.size_bytes)
    except BaseException:
        platform.store.delete_prefix(key)
        raise
    log.info("batch.succeeded", job_id=str(spec.job_id), rows=output.rows)


def _load(platform: Platform, lease: Lease[BatchPrediction]) -> tuple[_Spec, Model, Dataset]:
    with session_scope(platform.sessions) as session:
        job = lease.load(session)
        job.rows_done = 0
        model = (
            None
            if job.model_id is None
            else registry_repository.get(
                session, model_id=job.model_id, organization_id=job.organization_id
            )
        )
        if model is None:
            raise DLPError("the model version was deleted")
        dataset = (
            None
            if job.dataset_id is None
            else dataset_service.get_dataset(
                session, dataset_id=job.dataset_id, organization_id=job.organization_id
            )
        )
        if dataset is None:
            raise DLPError("the dataset was deleted")
        spec = _Spec(
            job_id=job.id,
            organization_id=job.organization_id,
            output_format=job.output_format,
            include_inputs=job.include_inputs,
            text_column=job.text_column,
        )
        session.expunge(model)
        session.expunge(dataset)
    return spec, model, dataset


def _model_inputs(table: pa.Table, spec: _Spec) -> pa.Table:
    """The columns the model reads, named as its input schema says."""
    if spec.text_column is None:
        return table
    if spec.text_column not in table.column_names:
        raise DLPError(f"the dataset has no column {spec.text_column!r}")
    return pa.table({"text": table.column(spec.text_column)})


def _kept_inputs(table: pa.Table, spec: _Spec) -> pa.Table | None:
    """The input columns copied into the output: all but an image's bytes, if asked for."""
    if not spec.include_inputs:
        return None
    return table.drop_columns([name for name in ("image",) if name in table.column_names])


class _Progress:
    """Records rows done every second or so, and notices cancellation and a lost lease."""

    def __init__(self, platform: Platform, lease: Lease[BatchPrediction]) -> None:
        self._platform = platform
        self._lease = lease
        self._last = time.monotonic()
        self._cancel_requested = False

    def check(self) -> None:
        """Raise ``JobCancelled`` once cancel was asked, ``LeaseLostError`` once the job
        was taken from this attempt."""
        if self._lease.lost:
            raise self._lease.lost_error()
        if self._cancel_requested:
            raise JobCancelled

    def report(self, rows_done: int) -> None:
        """Store the progress (and read the cancel flag), at most every second."""
        if time.monotonic() - self._last < PROGRESS_SECONDS:
            return
        with session_scope(self._platform.sessions) as session:
            job = self._lease.load(session)
            job.rows_done = rows_done
            self._cancel_requested = job.cancel_requested
        self._last = time.monotonic()


def _succeed(
    platform: Platform, lease: Lease[BatchPrediction], key: str, *, rows: int, size_bytes: int
) -> None:
    with session_scope(platform.sessions) as session:
        job = lease.load(session)
        job.rows_done = rows
        job.rows_total = rows
        job.output_key = key
        job.output_bytes = size_bytes
        lifecycle.end_job(BATCH_PREDICTIONS, job, "succeeded", None, utcnow())

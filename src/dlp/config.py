"""The one settings class: every knob is an environment variable prefixed ``DLP_``.

Only configuration chooses between the embedded shape (SQLite, a local folder,
Celery's ``filesystem://`` transport) and scale-out (PostgreSQL, Redis, S3).
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy import make_url

from dlp.security_settings import SecuritySettings

SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)
MIN_SECRET_KEY_LENGTH = 32


class Settings(SecuritySettings):
    """Runtime configuration read from ``DLP_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DLP_", extra="ignore")

    data_dir: Path = Field(
        default=Path("dlp-data"),
        description="Folder for everything the embedded shape keeps on disk.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy or plain PostgreSQL URL; default: SQLite in the data dir.",
    )
    database_read_url: str | None = Field(
        default=None,
        description="A read replica of the database (SQLAlchemy or plain PostgreSQL URL): "
        "the API's GET and HEAD requests read from it; writes and workers use "
        "DLP_DATABASE_URL. Unset: everything uses DLP_DATABASE_URL.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL; default: filesystem:// queue in the data dir.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for cache, rate limits and live events (optional)."
    )
    storage_url: str | None = Field(
        default=None,
        description="File store URL: file:///folder or s3://bucket/prefix; default: file:// "
        "folder in the data dir.",
    )
    s3_sse: Literal["AES256", "aws:kms"] | None = Field(
        default=None,
        description="S3 server-side encryption asked for on every write (s3:// stores only).",
    )
    s3_sse_kms_key_id: str | None = Field(
        default=None, description="The KMS key for DLP_S3_SSE=aws:kms; default: the AWS one."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Token-signing secret; default: generated once and kept in the data dir.",
    )
    max_upload_mb: int = Field(default=1024, gt=0, description="Largest accepted upload.")
    max_archive_entries: int = Field(
        default=100_000, gt=0, description="Most files an image .zip may hold."
    )
    max_archive_uncompressed_mb: int = Field(
        default=4096, gt=0, description="Largest total uncompressed size of an image .zip."
    )
    max_compression_ratio: float = Field(
        default=100.0, gt=1, description="Largest uncompressed/compressed ratio (zip bombs)."
    )
    max_image_pixels: int = Field(
        default=40_000_000, gt=0, description="Largest width x height of one uploaded image."
    )
    access_token_minutes: int = Field(default=15, gt=0)
    refresh_token_days: int = Field(default=30, gt=0)
    max_organizations_per_user: int = Field(
        default=20, ge=0, description="Most shared organizations one user may create."
    )
    invitation_ttl_hours: float = Field(
        default=168.0, gt=0, description="How long an organization invitation can be accepted."
    )
    org_max_storage_mb: int | None = Field(
        default=None,
        ge=0,
        description="Default storage quota of an organization (datasets, model files and "
        "batch outputs); unset: unlimited. The superuser may set one per organization.",
    )
    org_max_concurrent_jobs: int | None = Field(
        default=None,
        ge=0,
        description="Default number of queued or running jobs an organization may have "
        "(training jobs, tuning studies, batch predictions); unset: unlimited.",
    )
    model_cache_mb: int = Field(
        default=512, gt=0, description="Size of the loaded models kept in memory per API process."
    )
    model_l2_max_mb: int = Field(
        default=256, gt=0, description="Largest model whose files are cached in Redis (L2)."
    )
    model_l2_ttl_seconds: int = Field(
        default=3600, gt=0, description="How long a model's files stay in the Redis cache."
    )
    serving_max_batch_rows: int = Field(
        default=256, gt=0, description="Most rows one micro-batched model call takes."
    )
    serving_max_wait_ms: float = Field(
        default=2.0, ge=0, description="Longest a queued prediction waits for more to batch with."
    )
    serving_engine: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="auto: ONNX Runtime where it matches PyTorch within 1e-4, else PyTorch.",
    )
    serving_lookup_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long prediction endpoints reuse a checked credential and model "
        "lookup (alias, traffic and role changes reach other API processes within this, "
        "and a revoked or expired API key still predicts at most this long).",
    )
    api_gc_threshold: int = Field(
        default=50_000,
        ge=0,
        description="The API process's young-generation garbage-collection threshold "
        "(Python's default is 700; 0 keeps it). Under load, requests in flight outlive a "
        "few young collections and get promoted, which triggers full collections of the "
        "whole heap (torch, ONNX Runtime) several times a second.",
    )
    housekeeping_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often housekeeping runs (one API process of the installation at a "
        "time): spent refresh tokens and invitations, orphaned files, old checkpoints, "
        "retention.",
    )
    housekeeping_grace_hours: float = Field(
        default=24.0,
        ge=0,
        description="Housekeeping leaves files younger than this alone (an upload or a "
        "training run writes its files before its row is saved) and keeps spent refresh "
        "tokens this long (so a replayed one still revokes its login).",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Default retention of an organization: batch prediction outputs and "
        "finished jobs' checkpoints older than this are deleted (datasets and registered "
        "models never are); unset: kept forever. The superuser may set one per organization.",
    )
    worker_concurrency: int = Field(default=1, gt=0)
    worker_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port on which `dlp worker` serves its Prometheus /metrics (jobs run, "
        "running jobs, training speed, its process); unset: none.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="Interface the worker's metrics endpoint listens on (0.0.0.0: all).",
    )
    batch_chunk_rows: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Rows a batch prediction reads, predicts and writes at a time "
        "(its memory is bounded by this, not by the dataset).",
    )
    job_heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="How often a running job renews its lease."
    )
    job_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A running job whose heartbeat is older than this is re-queued.",
    )
    job_max_attempts: int = Field(
        default=3, gt=0, description="Tries per job (transient faults, lost workers)."
    )
    job_retry_backoff_seconds: float = Field(
        default=5.0, gt=0, description="First wait before retrying a transient fault; doubles."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhooks to loopback, private, link-local and metadata addresses.",
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=5, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    otel_endpoint: str | None = Field(
        default=None,
        description="OpenTelemetry collector (OTLP over HTTP, e.g. http://collector:4318) "
        "that receives traces of HTTP requests, database statements, queue hints, jobs and "
        "training epochs; needs `pip install 'dlp[otel]'`. Unset: no tracing, at no cost.",
    )
    otel_service_name: str | None = Field(
        default=None,
        description="The service name spans are exported under; default: dlp-api for the "
        "API, dlp-worker for workers.",
    )
    otel_sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of traces recorded (by trace id, so an API request and the job "
        "it submitted are kept or dropped together).",
    )

    @property
    def resolved_data_dir(self) -> Path:
        """The data directory as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver dlp uses."""
        if self.database_url is None:
            return f"sqlite:///{self.resolved_data_dir / 'dlp.db'}"
        return normalize_database_url(self.database_url)

    @property
    def sqlalchemy_read_url(self) -> str | None:
        """The read replica's URL with the driver dlp uses, or None without one."""
        if self.database_read_url is None:
            return None
        return normalize_database_url(self.database_read_url)

    @property
    def optuna_url(self) -> str:
        """Where Optuna keeps its tables: dlp's PostgreSQL database (in a schema of their
        own, see ``dlp.db.schema_engine_options``), or a SQLite file next to dlp's."""
        url = make_url(self.sqlalchemy_url)
        if url.get_backend_name() != "sqlite":
            return self.sqlalchemy_url
        database = url.database or ""
        stem = database.removesuffix(".db")
        return url.set(database=f"{stem}.optuna.db").render_as_string(hide_password=False)

    @property
    def celery_broker_url(self) -> str:
        """The broker URL; the embedded default is a folder queue."""
        return self.broker_url or "filesystem://"

    @property
    def queue_dir(self) -> Path:
        """Folder of the embedded ``filesystem://`` queue."""
        return self.resolved_data_dir / "queue"

    @property
    def file_store_url(self) -> str:
        """The file-store URL; the embedded default is a local folder."""
        return self.storage_url or f"file://{self.resolved_data_dir / 'files'}"

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> Settings:
        if self.job_lease_seconds < 2 * self.job_heartbeat_seconds:
            raise ValueError(
                "DLP_JOB_LEASE_SECONDS must be at least twice DLP_JOB_HEARTBEAT_SECONDS, "
                "or live jobs would be taken from their workers"
            )
        return self

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return self.max_upload_mb * 1024 * 1024

    def signing_key(self) -> str:
        """The token-signing secret: from ``DLP_SECRET_KEY``, else the data dir's key file."""
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            if len(key) < MIN_SECRET_KEY_LENGTH:
                raise ValueError(
                    f"DLP_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters"
                )
            return key
        return _load_or_create_key_file(self.resolved_data_dir / SECRET_KEY_FILE)


def normalize_database_url(url: str) -> str:
    """Turn a plain ``postgresql://`` URL (as psql takes it) into one with dlp's driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# Read once per process and path: tokens are checked on every request.
@lru_cache(maxsize=8)
def _load_or_create_key_file(path: Path) -> str:
    """Read the generated secret, creating it (mode 0600) on first use.

    The key is written to a private temporary file and hard-linked into place,
    so concurrent first starts agree on one key and nobody reads a half-written file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

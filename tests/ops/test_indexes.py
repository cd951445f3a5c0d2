"""Every list, lookup and claim query the repositories send reads an index on PostgreSQL.

A scratch database is filled with a few thousand rows per table (``generate_series``,
in SQL) and analysed; the repositories' own functions then run with a hook capturing
each statement they send, and each one's ``EXPLAIN`` must not scan a big table whole.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from dlp.audit import repository as audit_repository
from dlp.auth import repository as auth_repository
from dlp.batch import repository as batch_repository
from dlp.config import normalize_database_url
from dlp.datasets import repository as datasets_repository
from dlp.db import utcnow
from dlp.jobs import repository as jobs_repository
from dlp.migrate import upgrade_database
from dlp.organizations import repository as organizations_repository
from dlp.registry import repository as registry_repository
from dlp.training import repository as training_repository
from dlp.training.kind import TRAINING_JOBS
from dlp.training.models import TrainingJob
from dlp.tuning import repository as tuning_repository
from dlp.webhooks import repository as webhooks_repository
from tests.conftest import POSTGRES_URL, _create_postgres_database, _drop_postgres_database

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL, reason="set DLP_TEST_POSTGRES_URL to check query plans on PostgreSQL"
)

ORGS = 400
ROWS = 10_000
BIG_TABLES = {
    "users",
    "memberships",
    "datasets",
    "training_jobs",
    "models",
    "batch_predictions",
    "tuning_studies",
    "job_metrics",
    "model_aliases",
    "audit_events",
    "api_keys",
    "invitations",
    "refresh_tokens",
}

# Each row i belongs to organization i % ORGS; most jobs have ended, a few wait or run.
FILL = f"""
INSERT INTO organizations (id, created_at, name, is_personal)
SELECT gen_random_uuid(), now(), 'org' || i, false FROM generate_series(1, {ORGS}) i;
CREATE TEMP TABLE o AS SELECT id, (row_number() OVER (ORDER BY id) - 1)::int AS n
FROM organizations;
INSERT INTO users (id, created_at, username, email, password_hash, is_active, is_superuser,
                   default_organization_id)
SELECT gen_random_uuid(), now(), 'user' || i, 'user' || i || '@example.com', 'x', true, false,
       o.id
FROM generate_series(1, {ROWS}) i JOIN o ON o.n = i % {ORGS};
INSERT INTO memberships (organization_id, user_id, role, created_at)
SELECT default_organization_id, id, 'member', now() FROM users;
INSERT INTO datasets (id, created_at, organization_id, name, kind, file_format, file_key,
                      status, size_bytes, profile)
SELECT gen_random_uuid(), now() - i * interval '1 minute', o.id, 'd' || i, 'tabular', 'csv',
       'k' || i, 'ready', 100, '{{}}'
FROM generate_series(1, {ROWS}) i JOIN o ON o.n = i % {ORGS};
CREATE TEMP TABLE d AS SELECT id, organization_id, (row_number() OVER (ORDER BY id))::int AS n
FROM datasets;
INSERT INTO tuning_studies (id, created_at, organization_id, dataset_id, name, status, config,
                            optuna_name, n_trials, parallelism)
SELECT gen_random_uuid(), now() - d.n * interval '1 minute', d.organization_id, d.id, 's',
       CASE WHEN d.n % 50 = 0 THEN 'running' ELSE 'completed' END, '{{}}', 'study' || d.n, 4, 1
FROM d;
INSERT INTO training_jobs (id, created_at, organization_id, dataset_id, study_id, name, status,
                           priority, config, metrics, progress_epoch, total_epochs,
                           webhook_attempts, cancel_requested, attempts, heartbeat_at,
                           webhook_status, webhook_next_at)
SELECT gen_random_uuid(), now() - d.n * interval '1 minute', d.organization_id, d.id,
       CASE WHEN d.n % 3 = 0 THEN s.id END, 'j',
       CASE d.n % 50 WHEN 0 THEN 'queued' WHEN 1 THEN 'running' ELSE 'succeeded' END,
       'normal', '{{}}', '{{}}', 0, 5, 0, false, 1, now(),
       CASE WHEN d.n % 50 = 2 THEN 'pending' ELSE 'delivered' END, now()
FROM d JOIN tuning_studies s ON s.dataset_id = d.id;
CREATE TEMP TABLE j AS SELECT id, organization_id, dataset_id,
       (row_number() OVER (ORDER BY id))::int AS n FROM training_jobs;
INSERT INTO models (id, created_at, organization_id, name, version, task, type, data_kind,
                    dataset_id, job_id, config, metrics, evaluation, input_schema, files,
                    file_prefix, size_bytes, dlp_version, serving_variant)
SELECT gen_random_uuid(), now() - j.n * interval '1 minute', j.organization_id,
       'm' || j.n, j.n, 'classification', 'mlp', 'tabular', j.dataset_id, j.id,
       '{{}}', '{{}}', '{{}}', '[]', '{{}}', 'p', 10, '1', 'fp32'
FROM j;
INSERT INTO model_aliases (organization_id, name, alias, version, updated_at)
SELECT organization_id, name, CASE WHEN version % 100 = 0 THEN 'production'
       ELSE 'a' || version END, version, now() FROM models;
INSERT INTO batch_predictions (id, created_at, organization_id, model_id, dataset_id, name,
                               status, priority, model_version, output_format, include_inputs,
                               rows_total, rows_done, cancel_requested, attempts)
SELECT gen_random_uuid(), now() - m.version * interval '1 minute', m.organization_id, m.id,
       m.dataset_id, 'b', CASE WHEN m.version % 50 = 0 THEN 'queued' ELSE 'succeeded' END,
       'normal', 1, 'csv', false, 10, 10, false, 1
FROM models m;
INSERT INTO job_metrics (job_id, epoch, step, name, value, at)
SELECT j.id, e, e, 'val_loss', 1.0 / e, now() FROM j, generate_series(1, 3) e;
INSERT INTO audit_events (id, created_at, organization_id, action, detail)
SELECT gen_random_uuid(), now() - i * interval '1 second', o.id, 'login', '{{}}'
FROM generate_series(1, {ROWS}) i JOIN o ON o.n = i % {ORGS};
INSERT INTO api_keys (id, created_at, organization_id, user_id, name, scope, prefix, key_hash)
SELECT gen_random_uuid(), now(), default_organization_id, id, 'k', 'write', 'p',
       md5(username) FROM users;
INSERT INTO invitations (id, created_at, organization_id, email, role, token_hash, expires_at)
SELECT gen_random_uuid(), now(), default_organization_id, email, 'member', md5(email),
       now() + interval '1 day' FROM users;
INSERT INTO refresh_tokens (id, created_at, user_id, family_id, token_hash, expires_at)
SELECT gen_random_uuid(), now(), id, gen_random_uuid(), md5(email), now() + interval '1 day'
FROM users;
"""


@pytest.fixture(scope="module")
def filled() -> Iterator[Engine]:
    """A migrated scratch database with a few thousand rows per table, analysed."""
    name, url = _create_postgres_database()
    try:
        upgrade_database(normalize_database_url(url))
        engine = create_engine(normalize_database_url(url))
        with engine.begin() as connection:
            # Straight to psycopg: no parameters, so its ``%`` are SQL's, not placeholders.
            connection.connection.driver_connection.execute(FILL)  # type: ignore[union-attr]
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
        yield engine
        engine.dispose()
    finally:
        _drop_postgres_database(name)


def _repository_calls(session: Session) -> list[Callable[[], Any]]:
    """The queries the API's lists, lookups, "in use" checks and job claims send.

    Left out: start-up's read of every organization's ``production`` versions, where
    joining a scan of ``models`` is the right plan (it reads a share of the table).
    """

    def one(sql: str) -> Any:
        return session.execute(text(sql)).first()

    org, user, user_name = one(
        "SELECT default_organization_id, id, username FROM users WHERE username = 'user7'"
    )
    dataset_id, job_id, model_id, study_id, model_name = one(
        "SELECT j.dataset_id, j.id, m.id, j.study_id, m.name FROM training_jobs j "
        "JOIN models m ON m.job_id = j.id WHERE j.study_id IS NOT NULL LIMIT 1"
    )
    now = utcnow()
    page = {"limit": 50, "offset": 0}
    return [
        lambda: datasets_repository.list_page(session, organization_id=org, **page),
        lambda: datasets_repository.get(session, dataset_id=dataset_id, organization_id=org),
        lambda: datasets_repository.stored_bytes(session, org),
        lambda: registry_repository.list_page(session, organization_id=org, **page),
        lambda: registry_repository.list_versions(session, organization_id=org, name=model_name),
        lambda: registry_repository.next_version(session, organization_id=org, name=model_name),
        lambda: registry_repository.list_aliases(session, organization_id=org, name=model_name),
        lambda: registry_repository.stored_bytes(session, org),
        lambda: training_repository.list_page(session, organization_id=org, status=None, **page),
        lambda: training_repository.list_page(
            session, organization_id=org, status="queued", **page
        ),
        lambda: training_repository.count_active_for_dataset(session, dataset_id),
        lambda: training_repository.count_active_outside_studies(session, org),
        lambda: training_repository.list_metrics(session, job_id),
        lambda: batch_repository.list_page(
            session, organization_id=org, status="succeeded", model_id=model_id, **page
        ),
        lambda: batch_repository.count_active_for_dataset(session, dataset_id),
        lambda: batch_repository.count_active(session, org),
        lambda: batch_repository.stored_bytes(session, org),
        lambda: tuning_repository.list_page(session, organization_id=org, **page),
        lambda: tuning_repository.trials(session, [study_id]),
        lambda: tuning_repository.count_running_for_dataset(session, dataset_id),
        lambda: tuning_repository.running_study_ids(session),
        lambda: tuning_repository.unregistered_trial_results(session, study_id),
        lambda: audit_repository.page_events(session, org, **page),
        lambda: auth_repository.get_user_by_login(session, user_name),
        lambda: auth_repository.username_or_email_taken(session, "nobody", "nobody@example.com"),
        lambda: auth_repository.list_members(session, organization_id=org, **page),
        lambda: auth_repository.list_organizations_of(session, user_id=user, **page),
        lambda: auth_repository.list_api_keys(session, user_id=user, organization_id=org, **page),
        lambda: auth_repository.get_api_key_by_hash(session, "0" * 32),
        lambda: auth_repository.get_refresh_token_by_hash(session, "0" * 32),
        lambda: organizations_repository.list_pending_invitations(
            session, organization_id=org, now=now, **page
        ),
        lambda: organizations_repository.count_shared_administered(session, user),
        lambda: jobs_repository.claim_next(
            session,
            TrainingJob,
            TRAINING_JOBS.scope,
            worker="w",
            lease_token=uuid.uuid4(),
            now=now,
        ),
        lambda: jobs_repository.count_waiting(session, TrainingJob, TRAINING_JOBS.scope, now),
        lambda: jobs_repository.list_running(session, TrainingJob, TRAINING_JOBS.scope),
        lambda: jobs_repository.list_stale_running(session, TrainingJob, TRAINING_JOBS.scope, now),
        lambda: webhooks_repository.list_due(session, now=now, limit=10),
    ]


def test_the_repositories_queries_use_indexes_on_big_tables(filled: Engine) -> None:
    statements: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        statement, parameters = args[2], args[3]
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            statements.append((statement, parameters))

    with Session(filled) as session:
        calls = _repository_calls(session)
        event.listen(filled, "before_cursor_execute", capture)
        try:
            for call in calls:
                call()
        finally:
            event.remove(filled, "before_cursor_execute", capture)
            session.rollback()

    assert len(statements) >= len(calls)
    scans = []
    with filled.connect() as connection:
        for statement, parameters in statements:
            plan = "\n".join(
                row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            )
            whole = set(re.findall(r"Seq Scan on (\w+)", plan)) & BIG_TABLES
            if whole:
                scans.append(f"{sorted(whole)}:\n{statement}\n{plan}")
        connection.rollback()
    assert not scans, "\n\n".join(scans)

"""housekeeping runs, organization retention and the indexes of the API's lists

Revision ID: 7c3d5e1f2a90
Revises: 6a1f3c2b9d80
Create Date: 2026-11-27 10:30:00

Lists of an organization's rows, newest first, get one ``(organization_id, created_at)``
index each, which replaces the index on ``organization_id`` alone; foreign keys whose
parent is deleted (``models.dataset_id``, ``models.job_id``) get one so the delete's
``SET NULL`` does not scan the table; sign-in's lower-cased lookups get expression indexes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c3d5e1f2a90"
down_revision: str | None = "6a1f3c2b9d80"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables listed per organization, newest first, whose lone organization_id index goes.
LISTED_TABLES = ("datasets", "models", "training_jobs", "batch_predictions", "tuning_studies")


def upgrade() -> None:
    op.create_table(
        "housekeeping_runs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_housekeeping_runs")),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    for table in LISTED_TABLES:
        op.drop_index(f"ix_{table}_organization_id", table_name=table)
        op.create_index(
            f"ix_{table}_organization_id_created_at", table, ["organization_id", "created_at"]
        )
    op.create_index(op.f("ix_models_dataset_id"), "models", ["dataset_id"])
    op.create_index(op.f("ix_models_job_id"), "models", ["job_id"])
    op.create_index(op.f("ix_model_aliases_alias"), "model_aliases", ["alias"])
    op.create_index("ix_users_lower_username", "users", [sa.text("lower(username)")])
    op.create_index("ix_users_lower_email", "users", [sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_users_lower_email", table_name="users")
    op.drop_index("ix_users_lower_username", table_name="users")
    op.drop_index(op.f("ix_model_aliases_alias"), table_name="model_aliases")
    op.drop_index(op.f("ix_models_job_id"), table_name="models")
    op.drop_index(op.f("ix_models_dataset_id"), table_name="models")
    for table in LISTED_TABLES:
        op.drop_index(f"ix_{table}_organization_id_created_at", table_name=table)
        op.create_index(f"ix_{table}_organization_id", table, ["organization_id"])
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
    op.drop_table("housekeeping_runs")

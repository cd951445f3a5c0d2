"""tuning studies

Revision ID: e4a38724a04c
Revises: 8e2f5d3c0b71
Create Date: 2026-11-27 04:26:37
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dlp.db import UTCDateTime

revision: str = "e4a38724a04c"
down_revision: str | None = "8e2f5d3c0b71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tuning_studies",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("dataset_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("config", JSON_TYPE, nullable=False),
        sa.Column("optuna_name", sa.String(length=64), nullable=False),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column("parallelism", sa.Integer(), nullable=False),
        sa.Column("deadline_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("best_job_id", sa.Uuid(), nullable=True),
        sa.Column("best_value", sa.Float(), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("importances", JSON_TYPE, nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("completed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_tuning_studies_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_tuning_studies_dataset_id_datasets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_tuning_studies_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuning_studies")),
        sa.UniqueConstraint("optuna_name", name=op.f("uq_tuning_studies_optuna_name")),
    )
    with op.batch_alter_table("tuning_studies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tuning_studies_dataset_id"), ["dataset_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tuning_studies_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tuning_studies_status"), ["status"], unique=False)

    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("study_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("trial_params", JSON_TYPE, nullable=True))
        batch_op.add_column(sa.Column("trial_value", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("trial_result", JSON_TYPE, nullable=True))
        batch_op.create_index(batch_op.f("ix_training_jobs_study_id"), ["study_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_training_jobs_study_id_tuning_studies"),
            "tuning_studies",
            ["study_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_training_jobs_study_id_tuning_studies"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_training_jobs_study_id"))
        batch_op.drop_column("trial_result")
        batch_op.drop_column("trial_value")
        batch_op.drop_column("trial_params")
        batch_op.drop_column("trial_number")
        batch_op.drop_column("study_id")

    with op.batch_alter_table("tuning_studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tuning_studies_status"))
        batch_op.drop_index(batch_op.f("ix_tuning_studies_organization_id"))
        batch_op.drop_index(batch_op.f("ix_tuning_studies_dataset_id"))

    op.drop_table("tuning_studies")

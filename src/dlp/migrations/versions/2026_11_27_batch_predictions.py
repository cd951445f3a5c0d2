"""batch predictions

Revision ID: 8e2f5d3c0b71
Revises: 7d1e4c2b9a60
Create Date: 2026-11-27 01:48:28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dlp.db import UTCDateTime

revision: str = "8e2f5d3c0b71"
down_revision: str | None = "7d1e4c2b9a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED = ("dataset_id", "model_id", "organization_id", "status")


def upgrade() -> None:
    op.create_table(
        "batch_predictions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=True),
        sa.Column("output_format", sa.String(length=10), nullable=False),
        sa.Column("include_inputs", sa.Boolean(), nullable=False),
        sa.Column("text_column", sa.String(length=255), nullable=True),
        sa.Column("rows_total", sa.BigInteger(), nullable=False),
        sa.Column("rows_done", sa.BigInteger(), nullable=False),
        sa.Column("output_key", sa.String(length=500), nullable=True),
        sa.Column("output_bytes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_batch_predictions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_batch_predictions_dataset_id_datasets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_batch_predictions_model_id_models"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_batch_predictions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_predictions")),
    )
    with op.batch_alter_table("batch_predictions") as batch_op:
        for column in INDEXED:
            batch_op.create_index(batch_op.f(f"ix_batch_predictions_{column}"), [column])


def downgrade() -> None:
    with op.batch_alter_table("batch_predictions") as batch_op:
        for column in INDEXED:
            batch_op.drop_index(batch_op.f(f"ix_batch_predictions_{column}"))
    op.drop_table("batch_predictions")

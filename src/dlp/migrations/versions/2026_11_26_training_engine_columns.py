"""training engine: model data kind and evaluation, job checkpoint epoch

Revision ID: 3f1c2a7d9b10
Revises: 2a96f8ed1530
Create Date: 2026-11-26 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3f1c2a7d9b10"
down_revision: str | None = "2a96f8ed1530"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("data_kind", sa.String(length=20), nullable=False, server_default="tabular")
        )
        batch_op.add_column(
            sa.Column("evaluation", JSON_TYPE, nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkpoint_epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_column("checkpoint_epoch")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("evaluation")
        batch_op.drop_column("data_kind")

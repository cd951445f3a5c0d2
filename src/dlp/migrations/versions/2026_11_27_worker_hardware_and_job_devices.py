"""worker hardware and the devices a training job asks for

Revision ID: 5b9c0e7a2d41
Revises: e4a38724a04c
Create Date: 2026-11-27 06:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5b9c0e7a2d41"
down_revision: str | None = "e4a38724a04c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hardware", JSON_TYPE, nullable=True))
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("devices", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("device_type", sa.String(length=10), nullable=False, server_default="auto")
        )


def downgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_column("device_type")
        batch_op.drop_column("devices")
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("hardware")

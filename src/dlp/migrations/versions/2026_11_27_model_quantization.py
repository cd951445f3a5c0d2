"""model quantization: int8 report and the variant that serves

Revision ID: 7d1e4c2b9a60
Revises: 2ef89e8b1b8d
Create Date: 2026-11-27 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7d1e4c2b9a60"
down_revision: str | None = "2ef89e8b1b8d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quantization", JSON_TYPE, nullable=True))
        batch_op.add_column(
            sa.Column(
                "serving_variant", sa.String(length=10), nullable=False, server_default="fp32"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("serving_variant")
        batch_op.drop_column("quantization")

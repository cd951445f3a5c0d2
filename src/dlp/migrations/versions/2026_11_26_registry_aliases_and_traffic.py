"""registry aliases and traffic splits

Revision ID: 2ef89e8b1b8d
Revises: c198ff126146
Create Date: 2026-11-26 23:36:17
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dlp.db import UTCDateTime

revision: str = "2ef89e8b1b8d"
down_revision: str | None = "c198ff126146"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _owner_columns(table: str) -> list[Any]:
    return [
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f(f"fk_{table}_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f(f"fk_{table}_updated_by_users"),
            ondelete="SET NULL",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "model_aliases",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_owner_columns("model_aliases"),
        sa.PrimaryKeyConstraint("organization_id", "name", "alias", name=op.f("pk_model_aliases")),
    )
    op.create_table(
        "model_traffic",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("weights", JSON_TYPE, nullable=False),
        *_owner_columns("model_traffic"),
        sa.PrimaryKeyConstraint("organization_id", "name", name=op.f("pk_model_traffic")),
    )


def downgrade() -> None:
    op.drop_table("model_traffic")
    op.drop_table("model_aliases")

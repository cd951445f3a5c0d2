"""Apply Alembic migrations programmatically (``dlp serve`` on start, ``dlp db upgrade``)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at dlp's packaged migrations and ``url``."""
    config = Config()
    config.set_main_option("script_location", "dlp:migrations")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str) -> None:
    """Bring the database at ``url`` to the latest migration."""
    command.upgrade(alembic_config(url), "head")


def is_up_to_date(engine: Engine) -> bool:
    """Whether the database's schema is at the latest migration."""
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(False)))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(script.get_heads())

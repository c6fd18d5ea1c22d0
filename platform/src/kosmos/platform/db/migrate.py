"""Alembic migrations shipped inside the packages (``kosmos db upgrade``).

The platform owns the base history (identity, audit). A plugin that keeps state in
the metadata database ships its own versions folder (``Plugin.migrations``) as an
Alembic branch that depends on the platform's; ``upgrade`` takes every head.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def version_locations() -> list[str]:
    """The platform's versions folder and each installed plugin's."""
    from kosmos.platform.plugins import installed_plugins

    folders = [str(MIGRATIONS_DIR / "versions")]
    folders += [str(p.plugin.migrations) for p in installed_plugins() if p.plugin.migrations]
    return folders


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(version_locations()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate the database at ``url`` to ``revision`` (every branch head by default; idempotent)."""
    command.upgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    """The revisions the database is at (one per branch); empty when it was never migrated."""
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def pending_revisions(engine: Engine) -> list[str]:
    """Revisions not yet applied to the database at ``engine`` (empty when fully migrated)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    current = current_revisions(engine)
    return [r.revision for r in script.iterate_revisions("heads", tuple(current) or "base")]

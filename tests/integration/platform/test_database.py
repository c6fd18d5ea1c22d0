"""Migrations on both backends: idempotent, and the models match what they create."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kosmos.platform.db.engine import make_engine
from kosmos.platform.db.migrate import head_revisions, pending_revisions, upgrade
from kosmos.platform.db.models import Base
from kosmos.platform.plugins import import_models


def test_upgrade_is_idempotent_and_reaches_head(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        assert pending_revisions(engine) == []
        assert len(head_revisions()) >= 2  # the platform's and at least one plugin's branch
    finally:
        engine.dispose()


def test_models_match_the_migrations(database_url: str) -> None:
    import_models()  # plugins' tables join Base.metadata
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"

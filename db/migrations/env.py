"""Alembic's environment: runs the migrations on the connection `upgrade_store` hands over or,
from the alembic command line, on DDFT_DB_URL or a throwaway in-memory store."""

from __future__ import annotations

import os

from logging.config import fileConfig

from alembic import context
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from db import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from db.migrations import include_name

config = context.config


def run_on(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        include_name=include_name,
        compare_type=True,
        # SQLite alters a table by copying it; autogenerate writes such changes as batches.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    # A connection handed over inside a transaction keeps it (the caller commits); alone,
    # Alembic begins and commits its own.
    with context.begin_transaction():
        context.run_migrations()


handed_over = config.attributes.get("connection")
if handed_over is not None:
    run_on(handed_over)
elif context.is_offline_mode():
    raise SystemExit("ddft's migrations run on a live database; --sql is not supported")
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    url = os.environ.get("DDFT_DB_URL") or "sqlite://"
    db_engine = create_engine(url)
    with db_engine.connect() as connection:
        if url == "sqlite://":
            # `alembic revision --autogenerate` compares the models with a store at head: an
            # in-memory one is made first by running every migration on it (directly: a nested
            # alembic command would tear down this command's context).
            made = MigrationContext.configure(connection)
            script = context.script
            for revision in reversed(list(script.walk_revisions("base", "heads"))):
                with Operations.context(made):
                    revision.module.upgrade()
            made.stamp(script, "heads")
            connection.commit()
        run_on(connection)
        connection.commit()
    db_engine.dispose()

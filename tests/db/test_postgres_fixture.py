"""The PostgreSQL fixture's clean-up is the test's own: ending one test's schema never ends a
connection of a test running beside it (on the other xdist worker), even one caught between two
statements of a transaction."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tests.conftest import fresh_postgres_schema


def test_ending_a_schema_leaves_another_tests_open_transaction_alone():
    with fresh_postgres_schema("beside") as beside_url:
        beside = create_engine(beside_url)
        with beside.connect() as connection:
            connection.execute(text("CREATE TABLE t (x int)"))  # a transaction, left open
            with fresh_postgres_schema("ending") as ending_url:
                ending = create_engine(ending_url)
                with ending.connect() as own:
                    own.execute(text("SELECT 1"))
                ending.dispose()
            # The other schema's clean-up ran while this transaction was idle in it.
            connection.execute(text("CREATE INDEX ix_t_x ON t (x)"))
            connection.commit()
        beside.dispose()

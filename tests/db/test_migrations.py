"""The store's schema comes from its migrations: stores from before them keep every row, the
migrated schema is the models' schema, and `open_store` upgrades (once, saying so)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from db import queries
from db.migrations import MIGRATIONS, head_revision, include_name
from db.store import open_store, session_scope, store_upgrade

FIXTURES = Path(__file__).parent / "fixtures"
WHEN = datetime(2026, 5, 1, 12, 30, tzinfo=timezone.utc)


def _statements(path: Path) -> list[str]:
    body = "\n".join(line for line in path.read_text().splitlines()
                     if not line.startswith("--"))
    # Trigger bodies hold their own semicolons; they end with "END;".
    statements, current = [], []
    for part in body.split(";"):
        current.append(part)
        joined = ";".join(current).strip()
        if not joined:
            current = []
            continue
        if joined.upper().startswith("CREATE TRIGGER") and not joined.upper().endswith("END"):
            continue
        statements.append(joined)
        current = []
    return statements


# One row in each table of the store as it was before migrations, as the ddft of then wrote it.
_ROWS = [
    ("dataset", {"id": 1, "name": "kitchen-eval", "modality": "video", "purpose": "eval",
                 "source": "synthetic", "root": "/data", "description": "", "meta": "{}"}),
    ("job", {"id": 1, "kind": "train", "status": "succeeded", "title": "train", "params": "{}",
             "pid": 42, "host": "box", "step": 60, "total": 60, "message": "done",
             "cancel_requested": False, "error": None, "result": '{"loss": 0.5}',
             "log_path": "/runs/1.log", "started_at": WHEN, "heartbeat_at": WHEN,
             "finished_at": WHEN}),
    ("rater", {"id": 1, "name": "ana"}),
    ("campaign", {"id": 1, "name": "blind", "mode": "pairwise", "dataset_id": 1,
                  "variant_ids": "[1, 2]", "raters_per_item": 2, "seed": 7, "description": ""}),
    ("checkpoint", {"id": 1, "job_id": 1, "step": 60, "path": "/runs/1/final", "final": True}),
    ("metric", {"id": 1, "job_id": 1, "step": 60, "name": "loss", "value": 0.5}),
    ("sample", {"id": 1, "dataset_id": 1, "external_id": "video-01", "modality": "video",
                "split": "test", "media_path": "/data/v1.mp4",
                "prompt": "Write the recipe for the dish in this video.",
                "answer": "Boil the eggs for nine minutes.", "group": "eggs", "included": True,
                "duration_s": 12.5, "check_status": "ok", "check_reasons": "[]",
                "checked_at": WHEN, "meta": '{"steps": []}'}),
    ("modelvariant", {"id": 1, "name": "base", "base_model": "/m/base", "adapter_path": None,
                      "job_id": None, "checkpoint_id": None, "description": ""}),
    ("modelvariant", {"id": 2, "name": "tuned", "base_model": "/m/base",
                      "adapter_path": "/runs/1/final", "job_id": 1, "checkpoint_id": 1,
                      "description": "lora"}),
    ("generation", {"id": 1, "variant_id": 1, "sample_id": 1, "job_id": None, "prompt": "p",
                    "text": "Boil eggs.", "params_key": "greedy", "decoding": "{}",
                    "frame_indices": "[0, 8]", "frame_times": "[0.0, 1.0]", "n_tokens": 3,
                    "task": "recipe"}),
    ("generation", {"id": 2, "variant_id": 2, "sample_id": 1, "job_id": 1, "prompt": "p",
                    "text": "Boil the eggs nine minutes.", "params_key": "greedy",
                    "decoding": "{}", "frame_indices": "[]", "frame_times": "[]",
                    "n_tokens": 6, "task": "recipe"}),
    ("campaignitem", {"id": 1, "campaign_id": 1, "position": 0, "sample_id": 1,
                      "generation_id": 1, "other_generation_id": 2}),
    ("grounding", {"id": 1, "generation_id": 2, "params_key": "k", "params": "{}",
                   "steps": '[{"index": 0}]', "job_id": None}),
    ("judgment", {"id": 1, "generation_id": 2, "judge": "offline", "protocol": "offline",
                  "prompt_version": "v1", "score": 4.0, "verdict": "yes", "raw": "4",
                  "details": "{}", "job_id": None}),
    ("assignment", {"id": 1, "campaign_id": 1, "item_id": 1, "rater_id": 1, "swapped": True,
                    "state": "rated", "assigned_at": WHEN, "updated_at": WHEN}),
    ("rating", {"id": 1, "campaign_id": 1, "item_id": 1, "rater_id": 1, "generation_id": 2,
                "other_generation_id": 1, "scores": "{}", "choice": "left", "seconds": 3.5}),
]
_STAMPED = {"dataset", "job", "rater", "campaign", "checkpoint", "metric", "sample",
            "modelvariant", "generation", "grounding", "judgment", "rating"}


def _fill_store_of_before_migrations(url: str, dialect: str) -> dict[str, list[tuple]]:
    """Make the schema of the release before migrations from its frozen dump, add a row to every
    table, and return every table's rows."""
    db_engine = create_engine(url)
    with db_engine.begin() as connection:
        for statement in _statements(FIXTURES / f"store_before_migrations.{dialect}.sql"):
            connection.exec_driver_sql(statement)
        for table, row in _ROWS:
            if table in _STAMPED:
                row = {"created_at": WHEN, **row}
            columns = ", ".join(f'"{name}"' for name in row)
            values = ", ".join(f":{name}" for name in row)
            connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)
        if dialect == "sqlite":
            # That release indexed new samples for search in bulk, as add_samples did.
            connection.execute(text("INSERT INTO sample_fts(rowid, prompt, answer, external_id) "
                                    "SELECT id, prompt, answer, external_id FROM sample"))
        else:  # its sequences moved on with each insert; explicit ids do not move them
            for table in {table for table, _ in _ROWS}:
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
    rows = _all_rows(db_engine)
    db_engine.dispose()
    return rows


def _all_rows(db_engine) -> dict[str, list[dict]]:
    with db_engine.connect() as connection:
        return {table: [dict(row._mapping) for row in connection.execute(
                    text(f'SELECT * FROM "{table}" ORDER BY id'))]
                for table in sorted({table for table, _ in _ROWS})}


def _kept(after: dict[str, list[dict]], before: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The rows of `after` cut to the columns each table had `before` (later migrations add
    columns; every value that was there must still be)."""
    return {table: [{key: row[key] for key in (rows_before[0] if rows_before else row)}
                    for row in after[table]]
            for table, rows_before in before.items()}


def test_a_store_made_before_migrations_is_upgraded_keeping_every_row(ddft_store_url):
    dialect = "sqlite" if ddft_store_url.startswith("sqlite") else "postgresql"
    before = _fill_store_of_before_migrations(ddft_store_url, dialect)
    assert sum(len(rows) for rows in before.values()) == len(_ROWS)
    said: list[str] = []
    db_engine = open_store(url=ddft_store_url, announce=said.append)
    assert said == [store_upgrade(db_engine)]
    assert said[0].startswith("upgraded the store at ")
    assert said[0].endswith(f" from revision none (made before ddft had migrations) to "
                            f"{head_revision()}")
    after = _all_rows(db_engine)
    assert _kept(after, before) == before
    # The columns the device queue added are filled in for rows already there: a training run
    # takes one device slot, and its place in the queue is when it was made.
    (job,) = after["job"]
    assert (job["devices"], job["queue"], job["after"] in ("[]", [])) == (1, "", True)
    assert str(job["queued_at"])[:19] == str(job["created_at"])[:19]
    with session_scope(db_engine) as session:
        # The old rows read back through today's models, search included ...
        assert [s.external_id for s in queries.list_samples(session, search="boil egg")] == [
            "video-01"]
        job = queries.get_job(session, job_id=1)
        assert (job.status, job.result, job.finished_at) == ("succeeded", {"loss": 0.5}, WHEN)
        # ... and new rows go in beside them.
        dataset = queries.get_or_create_dataset(session, name="new", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "n1", "modality": "text", "prompt": "boil rice", "answer": "a"}])
        assert dataset.id == 2
        assert sorted(s.external_id for s in queries.list_samples(session, search="boil")) == [
            "n1", "video-01"]
    db_engine.dispose()
    again: list[str] = []
    reopened = open_store(url=ddft_store_url, announce=again.append)
    assert again == [] and store_upgrade(reopened) is None  # upgraded once
    reopened.dispose()


def test_a_new_store_is_made_at_the_newest_revision_without_an_upgrade_line(ddft_store_url):
    said: list[str] = []
    db_engine = open_store(url=ddft_store_url, announce=said.append)
    assert not [line for line in said if line.startswith("upgraded")]
    with db_engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == head_revision()
    db_engine.dispose()


def test_the_migrated_schema_is_the_models_schema(ddft_backend_store):
    """Fails when a model changes without a migration; add one with the command in
    db/migrations/__init__.py."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    with ddft_backend_store.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_name": include_name, "compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_the_quick_head_is_alembics_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [head_revision()]


OPENER = textwrap.dedent("""
    import json, os, sys, time
    from db.store import open_store, store_upgrade
    url, go = sys.argv[1], sys.argv[2]
    while not os.path.exists(go):
        time.sleep(0.01)
    db_engine = open_store(url=url)
    print(json.dumps(store_upgrade(db_engine)))
""")


def test_processes_opening_one_old_store_at_once_upgrade_it_once(ddft_store_url, tmp_path):
    dialect = "sqlite" if ddft_store_url.startswith("sqlite") else "postgresql"
    before = _fill_store_of_before_migrations(ddft_store_url, dialect)
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", OPENER, ddft_store_url, str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
    go.write_text("go")
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    lines = [json.loads(out) for out, _ in outputs]
    assert sum(line is not None for line in lines) == 1, lines
    db_engine = open_store(url=ddft_store_url)
    assert _kept(_all_rows(db_engine), before) == before
    with db_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert "alembic_version" in inspect(connection).get_table_names()
    db_engine.dispose()

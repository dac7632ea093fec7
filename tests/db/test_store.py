"""The store: pragmas, URL resolution, schema on first open, typed queries, constraints."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db import queries
from db.migrations import head_revision
from db.models import Sample
from db.store import StoreError, database_url, open_store, resolve_workspace, session_scope


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_busy_timeout(ddft_workspace):
    with open_store(ddft_workspace).connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_schema_is_created_on_first_open(ddft_workspace):
    db_engine = open_store(ddft_workspace)
    assert (ddft_workspace / "ddft.db").is_file()
    with db_engine.connect() as connection:
        tables = {row[0] for row in connection.execute(
            text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert {"dataset", "sample", "job", "modelvariant", "metric", "checkpoint", "generation",
            "judgment", "rater", "rating"} <= tables


def test_ddft_db_url_overrides_the_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("DDFT_DB_URL", f"sqlite:///{tmp_path}/elsewhere.db")
    assert database_url(tmp_path / "ws") == f"sqlite:///{tmp_path}/elsewhere.db"
    open_store(tmp_path / "ws")
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (tmp_path / "ws" / "ddft.db").exists()


def test_workspace_comes_from_argument_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DDFT_WORKSPACE", str(tmp_path / "env"))
    assert resolve_workspace() == tmp_path / "env"
    assert resolve_workspace(tmp_path / "arg") == tmp_path / "arg"


def test_a_bad_url_is_one_clear_error():
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(url="nosuchdialect://x")


def test_foreign_keys_are_enforced(ddft_backend_store):
    with pytest.raises(IntegrityError):
        with session_scope(ddft_backend_store) as session:
            session.add(Sample(dataset_id=999, external_id="x", modality="text", prompt="p",
                               answer="a"))


def _samples(n, modality="text"):
    return [{"external_id": f"s{i}", "modality": modality, "split": "train" if i % 2 else "val",
             "prompt": f"question {i}", "answer": "pasta" if i == 3 else f"answer {i}"}
            for i in range(n)]


def test_add_samples_is_idempotent_and_filters_work(ddft_backend_store):
    with session_scope(ddft_backend_store) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        assert queries.add_samples(session, dataset_id=dataset.id, samples=_samples(10)) == (10, 0)
        assert queries.add_samples(session, dataset_id=dataset.id, samples=_samples(12)) == (2, 10)
        assert queries.count_samples(session, dataset_id=dataset.id) == 12
        assert queries.count_samples(session, split="train") == 6
        found = queries.list_samples(session, search="PASTA")
        assert [s.external_id for s in found] == ["s3"]
        page = queries.list_samples(session, offset=5, limit=5)
        assert [s.external_id for s in page] == [f"s{i}" for i in range(5, 10)]
        queries.set_sample_included(session, sample_id=page[0].id, included=False)
    with session_scope(ddft_backend_store) as session:
        assert queries.count_samples(session, included=False) == 1
        with pytest.raises(KeyError):
            queries.set_sample_included(session, sample_id=12345, included=True)


def test_generations_and_judgments_are_keyed_by_what_produced_them(ddft_backend_store):
    with session_scope(ddft_backend_store) as session:
        dataset = queries.get_or_create_dataset(session, name="eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=_samples(1, "video"))
        sample = queries.list_samples(session)[0]
        variant = queries.create_variant(session, name="base", base_model="/m")
        generation = queries.add_generation(
            session, variant_id=variant.id, sample_id=sample.id, prompt="p", text="t",
            params_key="k1")
        assert queries.find_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       params_key="k1").id == generation.id
        assert queries.find_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       params_key="k2") is None
        queries.add_judgment(session, generation_id=generation.id, judge="offline",
                             protocol="offline", prompt_version="v1", score=4.0, verdict="yes")
    with pytest.raises(IntegrityError):
        with session_scope(ddft_backend_store) as session:
            queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                   prompt="p", text="other", params_key="k1")
    with session_scope(ddft_backend_store) as session:
        rows = queries.judged_rows(session, dataset_id=dataset.id)
    assert [(r.variant, r.score, r.verdict) for r in rows] == [("base", 4.0, "yes")]


def test_metrics_series_and_latest(ddft_backend_store):
    with session_scope(ddft_backend_store) as session:
        job = queries.create_job(session, kind="train", params={})
        for step, loss in [(1, 3.0), (2, 2.5), (3, 2.0)]:
            queries.add_metrics(session, job_id=job.id, step=step, values={"loss": loss, "lr": 0.1})
        assert queries.metric_series(session, job_id=job.id, name="loss") == [
            (1, 3.0), (2, 2.5), (3, 2.0)]
        assert queries.latest_metrics(session, job_id=job.id) == {"loss": 2.0, "lr": 0.1}


def test_full_text_search_matches_words_as_prefixes_and_follows_edits(ddft_backend_store):
    with session_scope(ddft_backend_store) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "a", "modality": "text", "prompt": "How do I braise short ribs?",
             "answer": "Brown them, then simmer in stock for three hours."},
            {"external_id": "b", "modality": "text", "prompt": "How long do eggs boil?",
             "answer": "Nine minutes for hard-boiled eggs."},
            {"external_id": "c-\"quoted\"", "modality": "text", "prompt": "Crème brûlée?",
             "answer": "Custard with burnt sugar."},
        ])
        ids = lambda term: [s.external_id for s in queries.list_samples(session, search=term)]  # noqa: E731
        assert ids("brais") == ["a"]                   # a prefix
        assert ids("boil eggs") == ["b"]               # every word must match
        assert ids("simmer eggs") == []
        assert ids("creme") == ["c-\"quoted\""]        # diacritics folded
        assert ids('"quoted"') == ["c-\"quoted\""]     # quotes do not break the query
        assert queries.count_samples(session, search="HOW") == 2
        sample = queries.list_samples(session, search="custard")[0]
        sample.answer = "A baked vanilla cream."
        session.add(sample)
        session.flush()
        assert ids("custard") == [] and ids("vanilla") == ["c-\"quoted\""]


def test_a_store_made_before_search_existed_is_indexed_on_open(ddft_workspace):
    from sqlalchemy import text as sql

    db_engine = open_store(ddft_workspace)
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "x", "modality": "text", "prompt": "saffron rice", "answer": "yes"}])
    with db_engine.begin() as connection:
        for name in ("sample_fts_ad", "sample_fts_au"):
            connection.execute(sql(f"DROP TRIGGER {name}"))
        connection.execute(sql("DROP TABLE sample_fts"))
        _as_made_before_migrations(connection)
    db_engine.dispose()
    reopened = open_store(ddft_workspace)
    with session_scope(reopened) as session:
        assert [s.external_id for s in queries.list_samples(session, search="saffron")] == ["x"]


def test_a_store_from_an_older_ddft_gains_new_columns_with_defaults(ddft_store_url):
    from sqlalchemy import text as sql

    db_engine = open_store(url=ddft_store_url)
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": "x", "modality": "text", "prompt": "p", "answer": "a"}])
    with db_engine.begin() as connection:
        connection.execute(sql("DROP INDEX ix_sample_check_status"))
        connection.execute(sql("DROP INDEX ix_sample_included"))
        for column in ("check_status", "check_reasons", "checked_at", "included"):
            connection.execute(sql(f"ALTER TABLE sample DROP COLUMN {column}"))
        _as_made_before_migrations(connection)
    db_engine.dispose()
    said = []
    reopened = open_store(url=ddft_store_url, announce=said.append)
    with session_scope(reopened) as session:
        (sample,) = queries.list_samples(session)
        assert (sample.check_status, sample.check_reasons, sample.checked_at,
                sample.included) == ("unchecked", [], None, True)
        assert queries.count_samples(session, included=True) == 1
    assert said == [f"upgraded the store at {_where(ddft_store_url)} from revision none "
                    f"(made before ddft had migrations) to {head_revision()}"]


def test_a_whole_selection_can_be_included_or_excluded(ddft_backend_store):
    with session_scope(ddft_backend_store) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=_samples(1200))
        ids = queries.filtered_sample_ids(session, split="train")
        assert len(ids) == 600
        assert queries.set_samples_included(session, sample_ids=ids, included=False) == 600
        assert queries.set_samples_included(session, sample_ids=ids, included=False) == 0
    with session_scope(ddft_backend_store) as session:
        assert queries.count_samples(session, included=False, split="train") == 600
        assert queries.count_samples(session, included=True) == 600


# The tables of the last ddft made without migrations (tests/db/fixtures/).
TABLES_BEFORE_MIGRATIONS = {
    "assignment", "campaign", "campaignitem", "checkpoint", "dataset", "generation", "grounding",
    "job", "judgment", "metric", "modelvariant", "rater", "rating", "sample"}


def _as_made_before_migrations(connection) -> None:
    """Make a store look as the ddft before migrations left it: no revision, no later table."""
    from sqlalchemy import inspect

    for table in inspect(connection).get_table_names():
        if table not in TABLES_BEFORE_MIGRATIONS and not table.startswith("sample_fts"):
            connection.execute(text(f"DROP TABLE {table}"))


def _where(url: str) -> str:
    """How the upgrade line names a store: its file, or its URL without a password."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database
    return parsed.render_as_string(hide_password=True)


# ---------------------------------------------------------------- faults (issue 13)


def test_a_read_never_creates_a_store_and_a_creator_says_it_made_one(tmp_path):
    path = tmp_path / "ws" / "ddft.db"
    with pytest.raises(StoreError, match=r"no store at .*ddft.db \(ddft demo or ddft data "
                                         r"import creates one\)"):
        open_store(tmp_path / "ws", create=False)
    assert not path.exists()
    told: list[str] = []
    open_store(tmp_path / "ws", announce=told.append)
    assert told[-1] == f"created a new store at {path}"
    open_store(tmp_path / "ws", create=False, announce=told.append)  # there now: not made again
    assert [line for line in told if line.startswith("created")] == [
        f"created a new store at {path}"]


def test_a_deleted_or_replaced_store_is_reported_and_never_made_again(tmp_path):
    from db.store import check_store

    for how in ("delete", "move", "replace"):
        folder = tmp_path / how
        db_engine = open_store(folder)
        path = folder / "ddft.db"
        with session_scope(db_engine) as session:
            queries.create_job(session, kind="train", params={}, title="t")
        if how == "delete":
            path.unlink()
        elif how == "move":
            path.rename(folder / "moved.db")
        else:
            path.rename(folder / "old.db")
            open_store(url=f"sqlite:///{path}")  # another, empty store at the same path
        with pytest.raises(StoreError, match="gone|replaced"):
            check_store(db_engine)
        with pytest.raises(StoreError, match="gone|replaced"):
            with session_scope(db_engine, write=True) as session:
                queries.create_job(session, kind="train", params={}, title="lost")
        if how != "replace":
            # A fresh connection of the old engine fails instead of making an empty store.
            db_engine.dispose()
            with pytest.raises(Exception):
                with db_engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            assert not path.exists()


def test_a_write_waits_out_a_held_lock_and_gives_up_as_busy_after_its_budget(ddft_store,
                                                                              monkeypatch):
    import sqlite3
    import threading

    import db.store
    from db.store import StoreBusy

    path = str(ddft_store.url.database)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(db.store, "WRITE_BUDGET_S", 0.3)
    with pytest.raises(StoreBusy, match="the store is busy, try again"):
        with session_scope(ddft_store, write=True) as session:
            queries.create_job(session, kind="train", params={}, title="never")
    # Released while a writer waits: the writer gets the lock and its write is kept.
    monkeypatch.setattr(db.store, "WRITE_BUDGET_S", 60.0)
    waiting = threading.Event()
    release = threading.Thread(target=lambda: (waiting.wait(30), holder.execute("ROLLBACK")))
    release.start()
    real_sleep = db.store.time.sleep

    def sleep(seconds):  # the writer's first pause means it is waiting for the lock
        waiting.set()
        real_sleep(seconds)

    monkeypatch.setattr(db.store.time, "sleep", sleep)
    with session_scope(ddft_store, write=True) as session:
        queries.create_job(session, kind="train", params={}, title="kept")
    release.join()
    holder.close()
    with session_scope(ddft_store) as session:
        assert [j.title for j in queries.list_jobs(session)] == ["kept"]


def test_a_full_disk_under_the_store_is_one_line_naming_its_folder(ddft_store, ddft_workspace):
    from sqlalchemy import event

    from db.models import Job

    with session_scope(ddft_store) as session:
        queries.create_job(session, kind="train", params={}, title="before")

    def fill(dbapi_connection, _record):  # the file may not grow by one more page: SQLITE_FULL
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    ddft_store.dispose()
    event.listen(ddft_store, "connect", fill)
    with pytest.raises(StoreError) as caught:
        with session_scope(ddft_store) as session:
            session.add_all(Job(kind="train", params={"pad": "x" * 5000}, title=f"j{i}")
                            for i in range(50))
    message = str(caught.value)
    assert message.startswith(f"no space left for the store in {ddft_workspace}")
    assert "MB" in message and "\n" not in message
    with session_scope(ddft_store) as session:  # reading goes on
        assert [j.title for j in queries.list_jobs(session)] == ["before"]

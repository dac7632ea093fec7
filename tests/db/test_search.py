"""Search over samples means the same on SQLite (FTS5) and PostgreSQL (its full-text search)."""

from __future__ import annotations

from sqlalchemy import text

from db import queries
from db.store import open_store, session_scope

SAMPLES = [
    ("a", "How do I braise short ribs?", "Brown them, then simmer in stock for three hours."),
    ("b", "How long do eggs boil?", "Nine minutes for hard-boiled eggs."),
    ('c-"quoted"', "Crème brûlée?", "Custard with burnt sugar."),
    ("vid_0012", "Write the recipe for the dish in this video.", "Boil water. Add 3.5 cups rice."),
    ("d", "Jalapeño poppers", "Stuff the peppers; bake at 200°C for twenty minutes."),
    ("e", "eggs-benedict", "Poach the eggs, toast the muffins (English), add hollandaise."),
]
SEARCHES = [
    "brais", "boil eggs", "eggs boil", "simmer eggs", "creme", "CRÈME brul", '"quoted"', "HOW",
    "vid_00", "vid", "0012", "3.5", "3.5 cups", "jalapeno", "200 c", "eggs-bene", "benedict",
    "muffins english", "english)", "-", "- boil", "nothing-here", "boi", "egg", "x\x00y",
    "poach toast hollandaise", "hard boiled", "hard-boiled eggs", "for", "rice water boil",
]


def _fill(db_engine) -> None:
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": external_id, "modality": "text", "prompt": prompt, "answer": answer}
            for external_id, prompt, answer in SAMPLES])


def _found(db_engine, search: str) -> tuple[list[str], list[str], int]:
    with session_scope(db_engine) as session:
        listed = [s.external_id for s in queries.list_samples(session, search=search)]
        # With another filter, SQLite takes the general path instead of FTS alone.
        filtered = [s.external_id for s in queries.list_samples(session, search=search,
                                                                 modality="text")]
        counted = queries.count_samples(session, search=search)
    return listed, filtered, counted


def test_the_same_searches_find_the_same_samples_on_both_stores(ddft_workspace):
    from tests.conftest import fresh_postgres_schema

    sqlite_store = open_store(ddft_workspace)
    _fill(sqlite_store)
    with fresh_postgres_schema("search") as url:
        postgres_store = open_store(url=url)
        _fill(postgres_store)
        for search in SEARCHES:
            on_sqlite = _found(sqlite_store, search)
            assert on_sqlite[0] == on_sqlite[1] and len(on_sqlite[0]) == on_sqlite[2], search
            assert _found(postgres_store, search) == on_sqlite, search
        # The searches mean something: these are FTS5's answers, which PostgreSQL must give.
        assert _found(postgres_store, "boil eggs")[0] == ["b"]
        assert _found(postgres_store, "creme")[0] == ['c-"quoted"']
        assert _found(postgres_store, "vid_00")[0] == ["vid_0012"]
        assert _found(postgres_store, "- boil")[0] == ["b", "vid_0012"]
        assert _found(postgres_store, "-")[0] == []
        postgres_store.dispose()
    sqlite_store.dispose()


def test_postgres_search_uses_its_full_text_index():
    from tests.conftest import fresh_postgres_schema

    with fresh_postgres_schema("search_index") as url:
        _plan_uses_the_index(url)


def _plan_uses_the_index(url: str) -> None:
    db_engine = open_store(url=url)
    _fill(db_engine)
    with session_scope(db_engine) as session:
        # The plan of the query that list_samples runs, with sequential scans ruled out: it can
        # only be planned through the index when the query's expression is the indexed one.
        query = queries._sample_filter(
            session, queries.select(queries.Sample.id), dataset_id=None, modality=None,
            split=None, included=None, search="boil eggs")
        compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(row[0] for row in session.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_sample_search" in plan, plan
    db_engine.dispose()

"""The Compare screen's loaders run a fixed number of SQL statements, however many samples and
variants there are."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from db.store import open_store
from engine.bench_compare import fill_compare_store
from workbench.data.compare import filter_samples, load_choices, load_view


@contextmanager
def statements(db_engine):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(db_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db_engine, "before_cursor_execute", record)


def _store(tmp_path, samples: int, variants: int):
    db_engine = open_store(url=f"sqlite:///{tmp_path}/{samples}x{variants}.db")
    fill_compare_store(db_engine, samples=samples, variants=variants)
    return db_engine


def test_a_page_runs_as_many_statements_for_10_samples_as_for_100(tmp_path):
    counts = {}
    for samples in (10, 100):
        db_engine = _store(tmp_path, samples, 4)
        with statements(db_engine) as seen:
            choices = load_choices(db_engine)
        assert len(choices.samples) == samples and len(choices.variants) == 4
        # The fill's judges disagree on every fifth sample: the flags were read for every one.
        flagged = filter_samples(choices.samples, disagree=True, gap_setting=None)
        assert [s.label for s in flagged] == [f"video-{i:04d}" for i in range(0, samples, 5)]
        counts[samples] = len(seen)
        db_engine.dispose()
    assert counts[10] == counts[100]


def test_a_samples_view_runs_as_many_statements_for_2_variants_as_for_4(tmp_path):
    counts = {}
    for variants in (2, 4):
        db_engine = _store(tmp_path, 3, variants)
        choices = load_choices(db_engine)
        with statements(db_engine) as seen:
            view = load_view(db_engine, sample=choices.samples[1], variants=choices.variants)
        # Each side shows the latest of its two generations, both judgments and the grounding.
        assert all(side.generation is not None and len(side.judgments) == 2
                   and side.grounding is not None for side in view.sides)
        assert len(view.sides) == variants
        counts[variants] = len(seen)
        db_engine.dispose()
    assert counts[2] == counts[4]


def test_the_sample_log_runs_as_many_statements_for_10_samples_as_for_40(tmp_path):
    from db.store import session_scope
    from engine.evaluation.report import ReportSelection, build_report, sample_log

    counts = {}
    for samples in (10, 40):
        db_engine = _store(tmp_path, samples, 2)
        with session_scope(db_engine) as session:
            selection = build_report(session, ReportSelection()).selection
            with statements(db_engine) as seen:
                records = sample_log(session, selection)
        assert len([r for r in records if r["row"] == "judged"]) == 2 * samples
        counts[samples] = len(seen)
    assert counts[10] == counts[40], counts

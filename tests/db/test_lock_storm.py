"""Many raters and a training job writing one SQLite store at once, as real processes: no
"database is locked" reaches a rater or the job, and no rating is lost or stored twice."""

from __future__ import annotations

from engine.bench_raters import bench_raters


def test_six_raters_and_a_training_job_writer_see_no_lock_error_and_lose_nothing(tmp_path):
    # SQLite's own lock wait is cut to 100 ms in every process, so that this small storm makes
    # the waits that ran out after 30 s under 16 raters; the write budget still holds.
    result = bench_raters(raters=6, samples=40, raters_per_item=2, step_s=0.02,
                          folder=tmp_path, busy_timeout_ms=100, timeout_s=600)
    assert result.errors == []
    assert result.lost_or_duplicated() == []
    assert len(result.stored) == sum(len(r.saved) for r in result.reports) > 0
    assert result.job_writes > 0

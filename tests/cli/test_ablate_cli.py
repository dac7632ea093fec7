"""`ddft ablate`: a grid's problems before anything is written, status, list, cancel, and the
report in md, csv and json."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from db import queries
from db.store import open_store, session_scope
from engine.cli.main import app
from tests.workbench.test_grid_screen import _grid_store

runner = CliRunner()


def _workspace_with_grid(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    url = _grid_store(tmp_path)
    (tmp_path / "ddft.db").rename(workspace / "ddft.db")
    assert url
    return workspace


def test_a_bad_grid_is_one_line_and_writes_nothing(ddft_workspace, tmp_path):
    db_engine = open_store(ddft_workspace)
    with session_scope(db_engine) as session:
        queries.get_or_create_dataset(session, name="pics", modality="image")
    model = tmp_path / "model"
    model.mkdir()
    result = runner.invoke(app, ["ablate", "run", "g", "--base", str(model), "-d", "pics",
                                 "-d", "nope", "-m", "video", "--grid", "lora_q=1,2",
                                 "--workspace", str(ddft_workspace)])
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("error: cannot make grid g: ") and "\n" not in line
    for part in ("no dataset named nope", "no eval set named 'kitchen-eval'",
                 "modalities video: no training set of video", "expected a model directory"):
        assert part in line, line
    with session_scope(db_engine) as session:
        assert queries.list_grids(session) == [] and queries.list_jobs(session) == []
    missing = runner.invoke(app, ["ablate", "run", "other", "--workspace",
                                  str(ddft_workspace)])
    assert missing.exit_code == 1 and "--base is needed" in missing.output
    axis = runner.invoke(app, ["ablate", "run", "g", "--base", str(model), "--grid", "lora_r",
                               "--workspace", str(ddft_workspace)])
    assert axis.exit_code == 1 and "--grid lora_r: expected FIELD=VALUE,VALUE" in axis.output


def test_a_gpt_judge_without_a_key_is_refused_before_the_grid_is_made(ddft_workspace, tmp_path,
                                                                      monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    db_engine = open_store(ddft_workspace)
    with session_scope(db_engine) as session:
        queries.get_or_create_dataset(session, name="pics", modality="image")
    result = runner.invoke(app, ["ablate", "run", "g", "--base", str(tmp_path), "-d", "pics",
                                 "--judge", "gpt", "--workspace", str(ddft_workspace)])
    assert result.exit_code == 1
    assert "no API key for https://api.openai.com/v1: set OPENAI_API_KEY" in " ".join(
        result.output.split())
    with session_scope(db_engine) as session:
        assert queries.list_grids(session) == [] and queries.list_jobs(session) == []


def test_status_list_and_the_report_in_three_formats(tmp_path):
    workspace = _workspace_with_grid(tmp_path)
    status = runner.invoke(app, ["ablate", "status", "abl[/]", "--workspace", str(workspace)])
    assert status.exit_code == 0, status.output
    assert "grid abl[/] on eval" in status.output and "image+video" in status.output
    listed = runner.invoke(app, ["ablate", "list", "--workspace", str(workspace)])
    assert "abl[/]" in listed.output and "3 done, 1 queued" in listed.output

    md = runner.invoke(app, ["ablate", "report", "abl[/]", "--workspace", str(workspace)])
    assert md.exit_code == 0, md.output
    assert "Holm-adjusted across the grid's 5 comparisons" in md.output
    rows = list(csv.reader(io.StringIO(runner.invoke(app, [
        "ablate", "report", "abl[/]", "--format", "csv", "--workspace",
        str(workspace)]).output)))
    assert len(rows) == 5 and rows[0][:3] == ["grid", "cell", "variant"]
    header = rows[0]
    image = dict(zip(header, rows[2]))
    assert image["variant"] == "abl[/]-image" and image["vs_all_variant"] == "abl[/]-image+video"
    assert float(image["vs_base_score_p_holm"]) >= float(image["vs_base_score_p"])
    data = json.loads(runner.invoke(app, ["ablate", "report", "abl[/]", "--format", "json",
                                          "--workspace", str(workspace)]).output)
    assert data["holm_family"] == 5 and len(data["rows"]) == 4
    assert data["rows"][1]["cost"] == {"steps": 20, "samples": 8, "gpus": 1,
                                       "gpu_hours": 1.0}
    unknown = runner.invoke(app, ["ablate", "report", "nope", "--workspace", str(workspace)])
    assert unknown.exit_code == 1 and "no grid named 'nope'" in unknown.output


def test_holm_adjusts_a_family_step_down():
    from engine.evaluation.stats import holm

    assert holm([0.01, 0.04, None, 0.03]) == [0.03, 0.06, None, 0.06]
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []

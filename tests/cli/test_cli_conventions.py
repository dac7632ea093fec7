"""The command line's conventions: help text that wraps at the terminal's width and shows no
value type on flags, environment variables named in --help, `--json` for scripts, results and
counts in words, and progress lines when the output is not a terminal."""

from __future__ import annotations

import io
import json

import click
import typer
from rich.console import Console
from typer.testing import CliRunner

from db import queries
from db.store import session_scope
from engine.cli.console import ProgressLines, help_text
from engine.evaluation.words import plural
from engine.jobs.results import describe_result
from engine.cli.main import app
from engine.evaluation.rating import create_campaign

runner = CliRunner()


def _invoke(*args, env=None):
    return runner.invoke(app, list(args), env={"COLUMNS": "100", **(env or {})})


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_no_command_help_breaks_lines_mid_sentence():
    # typer shows a docstring's later paragraphs, and the first one in command lists, with the
    # source's line breaks: each paragraph must be one line so the terminal wraps it.
    broken = [" ".join(path) for path, command in _commands(typer.main.get_command(app))
              if any("\n" in paragraph for paragraph in (command.help or "").split("\n\n"))]
    assert broken == []
    shown = _invoke("ground", "--help").output
    assert "generations grounded with the same settings are skipped" in " ".join(shown.split())
    assert help_text("""One
        paragraph.

        Two
        lines.""") == "One paragraph.\n\nTwo lines."


def test_flags_show_no_value_type_and_the_environment_is_named():
    shown = _invoke("data", "check", "--help").output
    assert "<bool>" not in shown
    assert "--detach " in shown and "<str>" in shown  # options with a value keep their type
    assert "env var: DDFT_WORKSPACE" in shown and "$DDFT_DB_URL" in shown
    assert "env var: OPENAI_BASE_URL" in _invoke("data", "generate-questions", "--help").output


def test_the_workspace_comes_from_its_environment_variable(ddft_store, ddft_workspace):
    listed = _invoke("data", "list", "--json", env={"DDFT_WORKSPACE": str(ddft_workspace)})
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []


def test_json_for_scripts_from_data_and_campaign_commands(ddft_store, ddft_workspace):
    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="kitchen-eval [/]", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"v{i}", "modality": "video", "prompt": "recipe?",
             "answer": "Dish: Soup", "split": "test"} for i in range(2)])
        for name in ("a", "b"):
            variant = queries.create_variant(session, name=name, base_model="/m")
            for sample in queries.list_samples(session, dataset_id=dataset.id, limit=None):
                queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       prompt="recipe?", text="Dish: Soup", params_key="k")
    create_campaign(ddft_store, name="duel", eval_set="kitchen-eval [/]", variants=["a", "b"],
                    mode="pairwise", seed=0)
    ws = ("--workspace", str(ddft_workspace))

    (listed,) = json.loads(_invoke("data", "list", "--json", *ws).stdout)
    assert listed["name"] == "kitchen-eval [/]" and listed["samples"] == 2
    assert listed["checks"] == {"ok": 0, "warn": 0, "failed": 0, "unchecked": 2}
    shown = json.loads(_invoke("data", "show", "kitchen-eval [/]", "--json", *ws).stdout)
    assert shown["splits"] == {"test": 2} and shown["purpose"] == "eval"
    printed = _invoke("data", "show", "kitchen-eval [/]", *ws)
    assert printed.exit_code == 0 and "dataset kitchen-eval [/] (id" in printed.output
    assert "2 samples, 2 included" in printed.output
    missing = _invoke("data", "show", "nope", "--json", *ws)
    assert missing.exit_code == 1 and "no dataset named 'nope'" in missing.output

    (campaign,) = json.loads(_invoke("campaign", "list", "--json", *ws).stdout)
    assert (campaign["name"], campaign["variants"], campaign["items"]) == ("duel", ["a", "b"], 2)
    one = json.loads(_invoke("campaign", "show", "duel", "--json", *ws).stdout)
    assert one["wanted"] == 2 and one["raters"] == [] and one["seed"] == 0
    # Counts read in words: one rater, not "1 raters".
    assert "2 items rated by 1 rater\n" in _invoke("campaign", "show", "duel", *ws).output


def test_results_and_counts_in_words():
    assert describe_result({"generated": 12, "skipped": 0, "failed": 1,
                            "failures": [{"sample": "v1"}]}) == "12 generated, 0 skipped, 1 failed"
    assert describe_result({"variant": "tiny-ddft", "steps": 700, "final_loss": 0.123456,
                            "truncated": 0, "stopped": False}) == (
        "variant tiny-ddft, 700 steps, final loss 0.1235")
    assert describe_result({"judged": 3, "summary": "3 judged, 0 skipped, $0.0010"}) == (
        "3 judged, 0 skipped, $0.0010")
    assert describe_result(None) == "no result" and describe_result({}) == "no result"
    assert (plural(1, "rating"), plural(2, "run"), plural(0, "entry", "entries")) == (
        "1 rating", "2 runs", "0 entries")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_reaches_a_pipe_as_a_line_every_few_seconds():
    out, clock = io.StringIO(), Clock()
    console = Console(file=out, width=200)
    assert not console.is_terminal
    with ProgressLines(console, every=10, clock=clock) as progress:
        task = progress.add_task("train job 4", total=None, message="")
        progress.update(task, completed=0, total=100, message="loading")
        for step in range(1, 41):  # 40 steps, one a second
            clock.now += 1
            progress.update(task, completed=step, total=100, message=f"loss {1 / step:.4f}")
    lines = out.getvalue().splitlines()
    assert lines[0] == "train job 4: started"
    assert lines[1] == "train job 4: 0/100 · loading"
    # One line every 10 s, then the last state; 60 steps left at a step a second: 0:01:00.
    assert lines[2:] == ["train job 4: 10/100 · loss 0.1000 · 0:01:30 left",
                         "train job 4: 20/100 · loss 0.0500 · 0:01:20 left",
                         "train job 4: 30/100 · loss 0.0333 · 0:01:10 left",
                         "train job 4: 40/100 · loss 0.0250 · 0:01:00 left"]

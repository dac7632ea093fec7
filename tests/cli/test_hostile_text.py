"""Names, ids, paths, prompts and errors holding Rich markup are printed as typed by every listing
and every error line; printed commands are quoted for the shell; names are checked; option
values out of range or outside their choices are refused in one message without a traceback."""

from __future__ import annotations

import shlex

import pytest
from typer.testing import CliRunner

from db import queries
from engine.cli import console as cli_console
from engine.cli.main import app
from tests.hostile_store import (
    BASE,
    CAMPAIGN,
    EVAL_SET,
    JOB_ERROR,
    JOB_MESSAGE,
    JOB_TITLE,
    LOG_LINE,
    RATER,
    SAMPLE_ID,
    TRAIN_SET,
    TUNED,
    build_hostile_store,
)

runner = CliRunner()


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    monkeypatch.delenv("DDFT_DB_URL", raising=False)
    monkeypatch.delenv("DDFT_WORKSPACE", raising=False)
    # Wide enough that no table cell wraps, so each name can be found whole in the output.
    for printer in (cli_console.console, cli_console.err_console):
        monkeypatch.setattr(printer, "_width", 400)
    store = build_hostile_store(tmp_path / "ws [/]")
    yield store
    store.db_engine.dispose()


def invoke(store, *args):
    result = runner.invoke(app, [*args, "--workspace", str(store.folder)])
    assert "Traceback" not in result.output and "MarkupError" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


@pytest.mark.parametrize("args, shown", [
    (["variants", "list"], [BASE, TUNED, "/runs/[/]/final", "/models/[/]tiny"]),
    (["data", "list"], [EVAL_SET, TRAIN_SET, "[red]src"]),
    (["campaign", "list"], [CAMPAIGN, EVAL_SET, f"{BASE}, {TUNED}"]),
    (["campaign", "show", CAMPAIGN], [CAMPAIGN, EVAL_SET, RATER]),
    (["jobs", "list"], [JOB_TITLE, JOB_MESSAGE, f"generate {BASE}", JOB_ERROR]),
    (["report"], [BASE, TUNED, EVAL_SET]),
    (["report", "--campaign", CAMPAIGN], [CAMPAIGN]),
    (["report-video"], [EVAL_SET, shlex.join(["--eval-set", EVAL_SET])]),
])
def test_listings_show_markup_in_names_as_typed(hostile, args, shown):
    result = invoke(hostile, *args)
    assert result.exit_code == 0, result.output
    for text in shown:
        assert text in result.output, (text, result.output)


def test_jobs_show_prints_titles_params_errors_and_log_lines_as_typed(hostile):
    result = invoke(hostile, "jobs", "show", str(hostile.train_job_id))
    assert result.exit_code == 0, result.output
    for text in (JOB_TITLE, JOB_MESSAGE, '"variant": "[red]x"', '"note": "[/]"', LOG_LINE,
                 str(hostile.folder)):
        assert text in result.output, (text, result.output)
    result = invoke(hostile, "jobs", "show", str(hostile.failed_job_id))
    assert result.exit_code == 0 and f"error: {JOB_ERROR}" in result.output, result.output


@pytest.mark.parametrize("args, shown", [
    (["generate", "--variant", "[/]nope", "--eval-set", EVAL_SET], "'[/]nope'"),
    (["variants", "export", BASE, "out"], f"{BASE} is a base model"),
    (["variants", "add", BASE, "--base", "org/m"], f"named {BASE!r} exists already"),
    (["campaign", "show", "[/]nope"], "[/]nope"),
    (["campaign", "create", CAMPAIGN, "-v", BASE, "-v", TUNED, "--eval-set", EVAL_SET],
     f"{CAMPAIGN!r} exists already"),
    (["data", "export", "[red]nope", "out.json", "--media-root", "."], "'[red]nope'"),
    (["rate", "--rater", RATER, "--campaign", "[bold]nope"], "[bold]nope"),
    (["judge", "--eval-set", "[red]gone"], "'[red]gone'"),
    (["report", "--eval-set", "[/]gone"], "[/]gone"),
    (["report", "--campaign", "[/]gone", "--eval-set", EVAL_SET], "[/]gone"),
    (["ground", "--variant", "[/]gone", "--eval-set", EVAL_SET], "'[/]gone'"),
    (["timestamps", "--variant", "[/]gone", "--eval-set", EVAL_SET], "'[/]gone'"),
    (["variants", "from-checkpoint", "999", "--name", "[/]new"], "999"),
])
def test_error_lines_show_names_as_typed(hostile, args, shown):
    result = invoke(hostile, *args)
    assert result.exit_code == 1, result.output
    assert shown in result.output, result.output
    assert "error:" in result.output


def test_an_import_of_a_missing_file_names_it_as_typed(hostile, tmp_path):
    missing = tmp_path / "[/]data [media_path].json"
    result = invoke(hostile, "data", "import", "llava", str(missing))
    assert result.exit_code == 1
    assert str(missing) in result.output.replace("\n", ""), result.output


def test_new_names_with_markup_are_stored_and_printed_as_typed(hostile):
    result = invoke(hostile, "variants", "add", "[bold]new[/]", "--base", "org/m")
    assert result.exit_code == 0 and "added variant [bold]new[/]" in result.output
    assert "[bold]new[/]" in invoke(hostile, "variants", "list").output


def test_campaign_create_prints_a_quoted_rating_command(hostile):
    name = "duel; rm -rf / [/]"
    result = invoke(hostile, "campaign", "create", name, "-v", BASE, "-v", TUNED,
                    "--eval-set", EVAL_SET)
    assert result.exit_code == 0, result.output
    command = next(line for line in result.output.splitlines() if "ddft rate" in line)
    quoted = command[command.index("`") + 1:command.rindex("`")]
    assert shlex.split(quoted) == ["ddft", "rate", "--rater", "NAME", "--campaign", name]
    shown = invoke(hostile, "campaign", "list").output
    assert name in shown


def test_a_campaign_without_raters_hints_a_quoted_command(hostile):
    name = "x'; echo hi #"
    assert invoke(hostile, "campaign", "create", name, "-v", BASE, "-v", TUNED,
                  "--eval-set", EVAL_SET).exit_code == 0
    result = invoke(hostile, "campaign", "show", name)
    line = next(line for line in result.output.splitlines() if "ddft rate" in line)
    assert shlex.split(line[line.index("`") + 1:line.rindex("`")])[-1] == name


@pytest.mark.parametrize("args", [
    ["variants", "add", "", "--base", "org/m"],
    ["variants", "add", "   ", "--base", "org/m"],
    ["variants", "add", "a\nb", "--base", "org/m"],
    ["variants", "add", "a\x00b", "--base", "org/m"],
    ["variants", "add", "x" * 101, "--base", "org/m"],
    ["variants", "from-checkpoint", "1", "--name", "\t"],
    ["train", "--variant", "two\nlines", "--base", "m"],
    ["campaign", "create", " ", "-v", BASE, "-v", TUNED],
    ["campaign", "create", "a\rb", "-v", BASE, "-v", TUNED],
    ["data", "import", "questions", ".", "--name", ""],
    ["data", "import", "llava", "x.json", "--name", "new\nline"],
])
def test_bad_names_are_refused_in_one_message_and_nothing_is_stored(hostile, args):
    with hostile.session() as session:
        before = (len(queries.list_variants(session)), len(queries.list_datasets(session)))
    result = invoke(hostile, *args)
    assert result.exit_code == 2, result.output
    assert "name" in result.output and "expected" in result.output, result.output
    with hostile.session() as session:
        assert (len(queries.list_variants(session)), len(queries.list_datasets(session))) \
            == before


@pytest.mark.parametrize("bad", ["", "  ", "a\tb", "x" * 101])
def test_a_bad_rater_name_is_refused_in_one_line(hostile, bad):
    result = invoke(hostile, "rate", "--rater", bad, "--campaign", CAMPAIGN)
    assert result.exit_code == 1 and "rater name" in result.output, result.output


def test_surrounding_blanks_are_a_slip_not_part_of_a_name(hostile):
    result = invoke(hostile, "variants", "add", "  spaced  ", "--base", "org/m")
    assert result.exit_code == 0, result.output
    with hostile.session() as session:
        assert queries.get_variant(session, name="spaced") is not None


@pytest.mark.parametrize("args, option", [
    (["generate", "--variant", BASE, "--batch-size", "0"], "--batch-size"),
    (["generate", "--variant", BASE, "--max-new-tokens", "-5"], "--max-new-tokens"),
    (["timestamps", "--variant", BASE, "--batch-size", "0"], "--batch-size"),
    (["ground", "--variant", BASE, "--top-k", "0"], "--top-k"),
    (["judge", "--concurrency", "0"], "--concurrency"),
    (["train", "--resume", "0"], "--resume"),
    (["data", "import", "youcook2", ".", "--limit", "-1"], "--limit"),
    (["data", "import", "youcook2", ".", "--subset", "bogus"], "--subset"),
    (["data", "import", "youcook2", ".", "--min-videos-per-recipe", "0"],
     "--min-videos-per-recipe"),
    (["data", "import", "foodx251", ".", "--split", "bogus"], "--split"),
    (["data", "import", "foodx251", ".", "--per-class", "0"], "--per-class"),
    (["data", "generate-questions", "--n", "0"], "--n"),
    (["campaign", "create", "c", "-v", BASE, "-v", TUNED, "-k", "0"], "--raters-per-item"),
    (["bench", "judge", "--latency-ms", "-1"], "--latency-ms"),
])
def test_bad_option_values_are_refused_in_one_message(hostile, args, option):
    if args[0] == "bench":
        result = runner.invoke(app, args)
    else:
        result = invoke(hostile, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(line.strip("│ ╭╰─") for line in result.output.splitlines())
    assert f"Invalid value for '{option}" in message, result.output


def test_the_option_choices_are_the_importers_own():
    from engine.cli.data import FoodxSplit, Youcook2Subset
    from engine.importers.foodx import SPLITS
    from engine.importers.youcook2 import SUBSET_NAMES

    assert [s.value for s in FoodxSplit] == list(SPLITS)
    assert [s.value for s in Youcook2Subset] == list(SUBSET_NAMES) or \
        sorted(s.value for s in Youcook2Subset) == sorted(SUBSET_NAMES)


def test_a_hint_in_a_refusal_is_a_quoted_command(hostile):
    name = "new; rm -rf ~ [/]"
    assert invoke(hostile, "variants", "add", name, "--base", "org/m").exit_code == 0
    result = invoke(hostile, "ground", "--variant", name, "--eval-set", EVAL_SET)
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    expected = shlex.join(["ddft", "generate", "--variant", name, "--eval-set", EVAL_SET])
    assert f"`{expected}`" in message, message

"""The rooms' import rules, enforced twice: import-linter's static contracts (pyproject.toml), and
every workbench screen, the New run form and the rating app opened in a fresh interpreter whose
`sys.modules` must hold nothing of the compute room."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "transformers", "peft", "accelerate", "decord", "av", "openai")
# The parts of engine/ the workbench may hold in memory; every other engine module is compute.
WORKBENCH_MAY_LOAD = ("engine", "engine.evaluation", "engine.jobs")


def _contracts() -> dict[str, dict]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def test_the_static_import_contracts_are_kept(capsys):
    from importlinter.cli import lint_imports

    code = lint_imports(config_filenames=(str(ROOT / "pyproject.toml"),), no_cache=True,
                        no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_every_compute_module_is_named_in_the_contracts():
    # A module added to engine/ and left out of the forbidden lists would slip past the contracts.
    import engine

    compute = {f"engine.{info.name}" for info in pkgutil.iter_modules(engine.__path__)}
    compute -= {"engine.evaluation", "engine.jobs"}
    for contract_id in ("evaluation", "workbench", "jobs-interface"):
        forbidden = set(_contracts()[contract_id]["forbidden_modules"])
        assert compute <= forbidden, (contract_id, sorted(compute - forbidden))


def test_a_contract_fails_on_a_forbidden_import(tmp_path, capsys):
    # The check can fail: a copy of the evaluation contract against a module that breaks it.
    from importlinter.cli import lint_imports

    package = tmp_path / "room"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "analysis.py").write_text("import room.compute\n")
    (package / "compute.py").write_text("")
    config = tmp_path / "contracts.toml"
    config.write_text(textwrap.dedent("""
        [tool.importlinter]
        root_packages = ["room"]
        [[tool.importlinter.contracts]]
        name = "analysis imports no compute"
        type = "forbidden"
        source_modules = ["room.analysis"]
        forbidden_modules = ["room.compute"]
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        assert lint_imports(config_filenames=(str(config),), no_cache=True, no_logo=True) == 1
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("room", None)
    assert "room.analysis -> room.compute" in capsys.readouterr().out


_OPEN_EVERY_SCREEN = """
import asyncio, json, sys
from workbench.app import build_app

async def settle(pilot):
    for _ in range(5):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

async def workbench(url, workspace):
    app = build_app(url=url, workspace=workspace)
    opened = []
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        for key in ("1", "2", "3", "4", "5"):
            await pilot.press(key)
            await settle(pilot)
            opened.append(type(app.screen).__name__)
        await pilot.press("n")  # the New run form, from the Runs screen
        await settle(pilot)
        opened.append(type(app.screen).__name__)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        opened.append(type(app.screen).__name__)
    return opened

async def rating(url, rater):
    app = build_app(url=url, rater=rater)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        return [type(app.screen).__name__]

url, rating_url, workspace = sys.argv[1:4]
opened = asyncio.run(workbench(url, workspace)) + asyncio.run(rating(rating_url, "ana"))
print(json.dumps({"opened": opened, "modules": sorted(sys.modules)}))
"""


@pytest.fixture
def stores(tmp_path):
    from tests.workbench.conftest import _build_demo
    from tests.workbench.test_rate_screen import _build as build_rating_store

    (tmp_path / "demo").mkdir()
    (tmp_path / "rating").mkdir()
    return _build_demo(tmp_path / "demo"), build_rating_store(tmp_path / "rating")


def test_no_screen_loads_the_compute_room(stores):
    demo, rating = stores
    out = subprocess.run(
        [sys.executable, "-c", _OPEN_EVERY_SCREEN, demo.url, rating.url, str(demo.root)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["opened"] == ["SamplesScreen", "JobsScreen", "CompareScreen", "ReportScreen",
                                "RunsScreen", "NewRunDialog", "HelpScreen", "RateScreen"]
    modules = set(report["modules"])
    assert not {name for name in modules if name.split(".")[0] in HEAVY}
    engine_modules = {name for name in modules if name == "engine" or name.startswith("engine.")}
    compute = {name for name in engine_modules
               if not name.startswith(tuple(f"{room}." for room in WORKBENCH_MAY_LOAD[1:]))
               and name not in WORKBENCH_MAY_LOAD}
    compute.discard("engine.jobs.handlers")  # named below, so that its absence is explicit
    assert not compute, sorted(compute)
    assert "engine.jobs.handlers" not in modules
    # What the screens did load: the evaluation room and the jobs interface.
    assert "engine.evaluation.report" in modules and "engine.jobs" in modules

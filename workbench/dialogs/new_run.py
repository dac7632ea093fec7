"""The New run form: a modal that shows the `ddft train …` command it builds and starts it as a job;
its fields, the help on the settings typed as overrides, the command and the problems scroll, so
that they and the buttons are reachable at 80×24."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, Input, Label, Static, TextArea

from workbench.data.jobs import JobsUnavailable
from workbench.data.new_run import (
    PRESETS,
    TIME_OPTIONS,
    RunForm,
    RunFormDefaults,
    check_request,
    load_run_form,
    parse_form,
    settings_help,
    start_run,
    train_request_class,
)
from workbench.screens.base import WorkbenchScreen

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

NO_DATASETS = "No training datasets yet: import some with `ddft data import kitchen` or `ddft data import …`."


class NewRunDialog(WorkbenchScreen, ModalScreen[int | None]):
    """Fields for one LoRA run; returns the id of the started job, or None when closed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Start run", id="new-run.start", priority=True,
                tooltip="Check the fields against the store and start the run"),
        Binding("escape", "close", "Close", id="new-run.close", tooltip="Close without starting"),
    ]

    DEFAULT_CSS = """
    NewRunDialog { align: center middle; }
    NewRunDialog > #new-run {
        width: 110; max-width: 95%; height: auto; max-height: 95%; padding: 0 1;
        border: thick $accent; background: $surface;
    }
    NewRunDialog #new-run-title { text-style: bold; margin-bottom: 1; }
    /* The fields, the command and the problems scroll in what the title and the buttons leave
       (66% of a 24-row screen is 15 rows: title 2, buttons 2 and the border 2 fit around it). */
    NewRunDialog #new-run-fields { height: auto; max-height: 66vh; }
    NewRunDialog .field { height: 1; margin-bottom: 1; }
    NewRunDialog .field Label { width: 12; color: $text-muted; }
    NewRunDialog .field Input { width: 1fr; }
    NewRunDialog #run-gpus { width: 8; }
    NewRunDialog Label.section { color: $text-muted; margin-top: 1; }
    NewRunDialog #run-datasets { height: auto; }
    NewRunDialog .dataset-row { height: 1; }
    NewRunDialog .dataset-row Checkbox { width: 1fr; }
    NewRunDialog .dataset-row Input { width: 10; }
    NewRunDialog #run-time { height: auto; }
    NewRunDialog #run-time Checkbox { width: auto; margin-right: 2; }
    NewRunDialog #run-overrides { height: 4; }
    NewRunDialog #run-settings-help { height: auto; color: $text-muted; }
    NewRunDialog #run-command { height: auto; max-height: 6; padding: 0 1; background: $boost; }
    NewRunDialog #run-problems { height: auto; max-height: 8; }
    NewRunDialog #new-run-buttons { height: 1; margin-top: 1; align-horizontal: right; }
    NewRunDialog #new-run-buttons Button { margin-left: 2; }
    """

    @dataclass
    class Loaded(Message):
        defaults: RunFormDefaults

    @dataclass
    class Answered(Message):
        """The store's verdict on a submitted run: its problems, an error, or the started job."""

        problems: tuple[str, ...]
        job_id: int | None

    def __init__(self) -> None:
        super().__init__()
        self._defaults: RunFormDefaults | None = None
        self._request_class: type | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="new-run"):
            yield Static("New training run", id="new-run-title")
            with VerticalScroll(id="new-run-fields"):
                with Horizontal(classes="field"):
                    yield Label("variant")
                    yield Input(id="run-variant", placeholder="what the trained model is called",
                                compact=True)
                with Horizontal(classes="field"):
                    yield Label("base model")
                    yield Input(id="run-base", placeholder="hub id or local directory", compact=True)
                with Horizontal(classes="field"):
                    yield Label("preset")
                    yield Input(id="run-preset", placeholder="tiny, paper, or the path of a preset file",
                                suggester=SuggestFromList(PRESETS, case_sensitive=False), compact=True)
                with Horizontal(classes="field"):
                    yield Label("GPUs")
                    yield Input("1", id="run-gpus", type="integer", compact=True)
                yield Label("datasets · mixture weight", classes="section")
                yield Vertical(Static("loading…", classes="dataset-note"), id="run-datasets")
                yield Label("time · what the model is told of when each frame is (off: plain "
                            "Video-LLaVA)", classes="section")
                with Horizontal(id="run-time"):
                    for key, label in TIME_OPTIONS:
                        yield Checkbox(label, False, id=f"run-{key.replace('_', '-')}",
                                       tooltip=f"sets {key}=true", compact=True)
                yield Label("overrides · key=value, one a line", classes="section")
                yield TextArea(id="run-overrides", soft_wrap=False, compact=True)
                yield Static("", id="run-settings-help")
                yield Label("command", classes="section")
                yield Static("loading…", id="run-command", markup=False)
                yield Static("", id="run-problems")
            with Horizontal(id="new-run-buttons"):
                yield Button("Close (esc)", id="run-close", compact=True)
                yield Button("Start run (ctrl+s)", id="run-start", variant="success", disabled=True,
                             compact=True)

    def on_mount(self) -> None:
        self.query_one("#run-variant", Input).focus()
        self._load(self.db_engine)

    @work(thread=True, exit_on_error=False, group="new-run-load")
    def _load(self, db_engine: Engine) -> None:
        self.post_message(self.Loaded(load_run_form(db_engine)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        defaults = self._defaults = message.defaults
        if defaults.request_error is None:
            self._request_class = train_request_class()
        variant = self.query_one("#run-variant", Input)
        variant.value = defaults.variant
        # The suggested name is selected, so typing replaces it, however the load and the
        # focus on opening were ordered.
        if variant.has_focus:
            variant.select_all()
        base = self.query_one("#run-base", Input)
        base.value = defaults.base
        base.suggester = SuggestFromList(defaults.bases) if defaults.bases else None
        self.query_one("#run-preset", Input).value = defaults.preset
        box = self.query_one("#run-datasets", Vertical)
        box.remove_children()
        if not defaults.datasets:
            box.mount(Static(NO_DATASETS, classes="dataset-note"))
        box.mount_all(
            Horizontal(
                Checkbox(Text(dataset.label), dataset.checked,
                         id=f"ds-check-{index}", compact=True),
                Input("1", id=f"ds-weight-{index}", type="number", placeholder="weight", compact=True),
                classes="dataset-row",
            )
            for index, dataset in enumerate(defaults.datasets)
        )
        self.query_one("#run-start", Button).disabled = self._request_class is None
        self.call_after_refresh(self._show_command)
        self.call_after_refresh(self._show_settings_help)

    # ------------------------------------------------------------------ the live command

    def form(self) -> RunForm:
        datasets = []
        for index, dataset in enumerate(self._defaults.datasets if self._defaults else ()):
            checked = self.query(f"#ds-check-{index}").results(Checkbox)
            weight = self.query(f"#ds-weight-{index}").results(Input)
            check_box, weight_box = next(checked, None), next(weight, None)
            if check_box is None or weight_box is None:
                continue  # mounting: the next change shows the command
            datasets.append((dataset.name, check_box.value, weight_box.value))
        return RunForm(
            variant=self.query_one("#run-variant", Input).value,
            base=self.query_one("#run-base", Input).value,
            preset=self.query_one("#run-preset", Input).value,
            datasets=tuple(datasets),
            overrides=self.query_one("#run-overrides", TextArea).text,
            gpus=self.query_one("#run-gpus", Input).value,
            time_options=tuple(key for key, _ in TIME_OPTIONS
                               if self.query_one(f"#run-{key.replace('_', '-')}", Checkbox).value),
        )

    def request(self) -> tuple[Any, str | None, list[str]]:
        """(TrainRequest or None, its shell command or None, problems reading the fields)."""
        if self._request_class is None:
            return None, None, []
        arguments, problems = parse_form(self.form())
        if arguments is None:
            return None, None, problems
        try:
            request = self._request_class(**arguments)
            return request, request.shell(), []
        except Exception as exc:  # noqa: BLE001 — TrainRequest may refuse a value outright; say which
            return None, None, [f"cannot build the command: {exc}"]

    def _show_command(self) -> None:
        command = self.query_one("#run-command", Static)
        if self._defaults is None:
            return
        if self._request_class is None:
            command.update(Text(f"The form cannot build a `ddft train` command here: "
                                f"{self._defaults.request_error}", style="red"))
            return
        _request, shell, problems = self.request()
        command.update(shell if shell is not None else Text("fix the fields below to see the command",
                                                            style="dim"))
        self._show_problems(problems)

    def _show_problems(self, problems: list[str] | tuple[str, ...], *, heading: str = "",
                       reveal: bool = False) -> None:
        """List `problems` under the command; with `reveal` (a refused start), scroll them into
        view, which on a short screen is below the fields."""
        text = Text()
        if problems:
            text.append(heading or "problems\n", style="bold red")
            for problem in problems:
                text.append(f"  • {problem}\n", style="red")
        shown = self.query_one("#run-problems", Static)
        shown.update(text)
        if reveal and problems:
            # The problems are the last thing in the scrolling part: its end shows them whole.
            fields = self.query_one("#new-run-fields", VerticalScroll)
            self.call_after_refresh(fields.scroll_end, animate=False)

    def _show_settings_help(self) -> None:
        overrides = self.query_one("#run-overrides", TextArea).text
        self.query_one("#run-settings-help", Static).update(settings_help(overrides))

    @on(Input.Changed)
    @on(Checkbox.Changed)
    @on(TextArea.Changed)
    def _field_changed(self) -> None:
        if not self._busy:
            self._show_command()
            self._show_settings_help()

    # ------------------------------------------------------------------ submit

    @on(Button.Pressed, "#run-start")
    def _start_pressed(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#run-close")
    def _close_pressed(self) -> None:
        self.action_close()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        if self._busy or self._request_class is None:
            self.app.bell()
            return
        request, _shell, problems = self.request()
        if request is None:
            self._show_problems(problems, reveal=True)
            self.app.bell()
            return
        workspace: Path | None = getattr(self.app, "workspace", None)
        if workspace is None:
            self._show_problems([("the workbench was opened without a workspace; runs need one "
                                  "for their checkpoints and logs")])
            return
        self._busy = True
        self.query_one("#run-start", Button).disabled = True
        self.query_one("#run-problems", Static).update(Text("checking against the store…", style="dim"))
        self._submit(self.db_engine, request, self.form().variant.strip(), workspace)

    @work(thread=True, exclusive=True, exit_on_error=False, group="new-run-submit")
    def _submit(self, db_engine: Engine, request: Any, variant: str, workspace: Path) -> None:
        try:
            problems = check_request(db_engine, request)
        except Exception as exc:  # noqa: BLE001 — a broken check must not leave the form waiting
            self.post_message(self.Answered((f"could not check the run: {type(exc).__name__}: {exc}",), None))
            return
        if problems:
            self.post_message(self.Answered(tuple(problems), None))
            return
        try:
            job_id = start_run(db_engine, request, variant=variant, workspace=workspace)
        except (JobsUnavailable, RuntimeError, OSError) as exc:  # RuntimeError: engine.jobs.JobError
            self.post_message(self.Answered((f"could not start the run: {exc}",), None))
            return
        self.post_message(self.Answered((), job_id))

    @on(Answered)
    def _answered(self, message: Answered) -> None:
        self._busy = False
        self.query_one("#run-start", Button).disabled = False
        if message.job_id is not None:
            self.dismiss(message.job_id)
            return
        self._show_problems(message.problems, heading="the run cannot start yet\n", reveal=True)


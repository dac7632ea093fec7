"""Keys and URL credentials never reach the workspace: not the job's params or error, not its
log, not the judge cache, not what the CLI prints. A key is planted where a hostile or careless
server and a careless user put it, then every byte under the workspace is searched for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import queries
from db.redaction import is_redacted_url, redact_secrets, redact_value
from db.store import session_scope
from engine.cli.main import app
from engine.llm import LLMAuthError, resolve_endpoint
from tests.fake_openai import API_KEY, FakeReply, fake_openai_server  # noqa: F401
from tests.rating_store import EVAL_SET, fill_store

URL_PASSWORD = "url-pass-7f3e9c1d"
runner = CliRunner()


def _planted(workspace: Path) -> list[str]:
    """Files under the workspace (database, -wal, caches, logs, reports) holding a secret."""
    found = []
    for path in workspace.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if API_KEY.encode() in data or URL_PASSWORD.encode() in data:
                found.append(str(path.relative_to(workspace)))
    return found


def _ddft(workspace, *args, env):
    result = runner.invoke(app, [*args, "--workspace", str(workspace)],
                           env={"COLUMNS": "200", **env})
    return result, result.output


def test_a_403_echoing_the_key_is_stored_and_printed_without_it(ddft_store, ddft_workspace,
                                                               fake_openai, monkeypatch):
    fill_store(ddft_store, samples=2)
    fake_openai.script(*[FakeReply(status=403, error=f"Incorrect API key provided: Bearer "
                                                     f"{API_KEY}")] * 4)
    result, out = _ddft(ddft_workspace, "judge", "--judge", "gpt", "--eval-set", EVAL_SET,
                        "--base-url", fake_openai.base_url, "--concurrency", "1",
                        env={"OPENAI_API_KEY": API_KEY})
    assert result.exit_code == 1
    assert "403 Forbidden" in out and "Incorrect API key provided: Bearer ***" in out
    assert API_KEY not in out
    with session_scope(ddft_store) as session:
        job = queries.list_jobs(session)[0]
    assert job.status == "failed" and "Bearer ***" in job.error
    shown, out = _ddft(ddft_workspace, "jobs", "show", str(job.id), env={})
    assert shown.exit_code == 0 and API_KEY not in out
    ddft_store.dispose()
    assert _planted(ddft_workspace) == []


def test_credentials_in_the_base_url_are_used_and_never_stored(ddft_store, ddft_workspace,
                                                               fake_openai, monkeypatch):
    fill_store(ddft_store, samples=2)
    fake_openai.api_key = None  # the URL's credentials go out as HTTP basic auth
    fake_openai.handler = lambda request: f"{{'score': 4}} (you sent {API_KEY})"
    # The command puts the credentials in $OPENAI_BASE_URL for its job; restored after.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://unused.invalid/v1")
    host = fake_openai.base_url.split("://", 1)[1]
    url = f"http://judge-user:{URL_PASSWORD}@{host}"
    result, out = _ddft(ddft_workspace, "judge", "--judge", "gpt", "--eval-set", EVAL_SET,
                        "--base-url", url, env={"OPENAI_API_KEY": API_KEY})
    assert result.exit_code == 0, out
    assert fake_openai.chat_requests and all(
        r.headers["authorization"].startswith("Basic ") for r in fake_openai.chat_requests)
    with session_scope(ddft_store) as session:
        job = queries.list_jobs(session)[0]
        raws = [j.raw for g in queries.list_generations(session)
                for j in queries.judgments_for_generation(session, generation_id=g.id)]
    assert job.status == "succeeded"
    assert job.params["base_url"] == f"http://judge-user:***@{host}"
    assert raws and all("(you sent ***)" in raw for raw in raws)
    shown, out = _ddft(ddft_workspace, "jobs", "show", str(job.id), env={})
    assert shown.exit_code == 0 and "judge-user:***@" in out and URL_PASSWORD not in out
    assert (ddft_workspace / "cache").is_dir()
    ddft_store.dispose()
    assert _planted(ddft_workspace) == []


def test_a_stored_url_without_its_credentials_is_one_error(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(Exception, match="credentials are never stored"):
        resolve_endpoint("http://u:***@127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://u:pw-123456@127.0.0.1:9/v1")
    assert resolve_endpoint("http://u:***@127.0.0.1:9/v1").base_url == \
        "http://u:pw-123456@127.0.0.1:9/v1"


def test_an_llm_error_never_carries_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "plain-key-without-shape")
    error = LLMAuthError("refused plain-key-without-shape and sk-abcdef123456 at "
                         "http://me:pw12345678@h/v1")
    assert str(error) == "refused *** and sk-*** at http://me:***@h/v1"


@pytest.mark.parametrize("text, expected", [
    ("Incorrect API key provided: Bearer sk-proj-AbC_123-xyz.", "Incorrect API key provided: "
                                                                "Bearer sk-***."),
    ("http://bob:hunter22@host:8/v1", "http://bob:***@host:8/v1"),
    ("https://tok3n@host/v1", "https://***@host/v1"),
    ("Authorization: Bearer abcdefgh12345", "Authorization: Bearer ***"),
    ("?api_key=abcd1234&x=1", "?api_key=***&x=1"),
    ("the basic stock is the secret: butter", "the basic stock is the secret: butter"),
    ("http://localhost:8000/v1 and sqlite:///ws/ddft.db", "http://localhost:8000/v1 and "
                                                          "sqlite:///ws/ddft.db"),
])
def test_redaction_masks_keys_and_credentials_and_keeps_ordinary_text(text, expected):
    assert redact_secrets(text) == expected


def test_redaction_goes_through_params():
    params = {"base_url": "http://u:secret99@h/v1", "pair": ["a", "b"], "n": 3, "x": None}
    assert redact_value(params) == {"base_url": "http://u:***@h/v1", "pair": ["a", "b"],
                                    "n": 3, "x": None}
    assert is_redacted_url("http://u:***@h/v1") and not is_redacted_url("http://h/v1")

"""`ddft bench generate` and `ddft bench judge` at a tiny size: positive numbers and their targets."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest
from typer.testing import CliRunner

from engine.bench_judge import judge_bench_server
from engine.cli.main import app

runner = CliRunner()


def test_bench_generate_tiny_reports_per_video_speed_and_the_target():
    result = runner.invoke(app, ["bench", "generate", "--smoke", "--videos", "4",
                                 "--batch-sizes", "1,4", "--new-tokens", "4"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # The table is printed last: a header and one row per batch size.
    assert lines[-3].split()[:3] == ["batch", "videos", "new"]
    rows = [line.split() for line in lines[-2:]]
    assert [row[0] for row in rows] == ["1", "4"]
    for row in rows:
        assert row[1] == "4" and row[2] == "4"
        assert float(row[3].rstrip("s")) > 0 and float(row[4]) > 0 and float(row[5]) > 0
    assert re.search(r"speed-up per video, batch 4 over batch 1: \d+\.\d+×", result.output)
    # Batch 8 was not measured, and the target line says so rather than claiming it.
    assert "batch 8 ≥ 3× faster per video than batch 1): not measured" in result.output


def test_bench_generate_rejects_a_bad_batch_size():
    result = runner.invoke(app, ["bench", "generate", "--batch-sizes", "1,zero"])
    assert result.exit_code == 1
    assert "'zero'" in result.output
    assert "Traceback" not in result.output


def test_bench_judge_tiny_reports_the_three_runs_with_targets():
    result = runner.invoke(app, ["bench", "judge", "--judgments", "20", "--latency-ms", "10"])
    assert result.exit_code == 0, result.output
    fresh = re.search(r"judge 20 generations, empty cache .*: ([\d.]+) (ms|s)\s+target ≤ 15\.00 s: "
                      r"(met|MISSED)\s+\(20 requests", result.output)
    cached = re.search(r"every answer cached: ([\d.]+) (ms|s)\s+target ≤ 1\.00 s: (met|MISSED)"
                       r"\s+\(20 cache hits, 0 requests\)", result.output)
    stored = re.search(r"every judgment stored: ([\d.]+) (ms|s)\s+\(20 skipped, 0 requests\)",
                       result.output)
    assert fresh and cached and stored, result.output
    assert all(float(m.group(1)) > 0 for m in (fresh, cached, stored))


def test_bench_judge_server_answers_on_loopback_only_and_stops():
    with judge_bench_server(latency_s=0.0) as server:
        host, port = server.address
        assert host == "127.0.0.1"
        request = urllib.request.Request(
            f"{server.base_url}/chat/completions", method="POST",
            data=b'{"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}',
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read().decode()
        assert "'score': 4" in body and '"usage"' in body
        assert server.requests == 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

"""The benchmarks under scripts/bench/ run from one command each and report what they promise.

Small sizes, so that CI stays fast: these check that each benchmark works end to end and that its
comparison is fair (the same tokens on both sides), never how fast anything is."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench(name: str, tmp_path: Path, *arguments: str) -> dict:
    output = tmp_path / f"{name}.json"
    process = subprocess.run([sys.executable, f"scripts/bench/{name}.py", *arguments, "--json", str(output)],
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stdout + process.stderr
    assert "JSON:" in process.stdout
    return json.loads(output.read_text())


def test_train_benchmark_runs_trl_and_gxft_on_the_same_tokens(tmp_path):
    report = bench("train", tmp_path, "--models", "tiny", "--examples", "16", "--max-tokens", "96",
                   "--batch-size", "4")
    result = report["results"]["tiny"]
    runs = result["runs"]
    assert set(runs) == {"trl", "gxft_padded", "gxft_packed"}
    assert runs["trl"]["tokens"] == runs["gxft_padded"]["tokens"] == runs["gxft_packed"]["tokens"] > 0
    assert all(run["steps"] == 4 and math.isfinite(run["final_loss"]) and run["tokens_per_second"] > 0
               for run in runs.values())
    assert result["ratio_equal_settings"] > 0 and report["machine"]["trl"]


def test_job_benchmark_times_create_to_running_and_succeeded(tmp_path):
    figures = bench("job", tmp_path, "--runs", "1")["figures"]
    assert (0 < figures["running"]["median_s"] <= figures["first_metrics"]["median_s"]
            <= figures["succeeded"]["median_s"])


def test_api_benchmark_reads_beside_bare_starlette_and_uploads(tmp_path):
    report = bench("api", tmp_path, "--jobs", "200", "--events", "4000", "--seconds", "0.3", "--upload-mb", "5")
    for runs in report["reads"].values():
        assert [run["clients"] for run in runs] == [1, 32]
        for run in runs:
            for side in ("gxft", "bare"):
                assert run[side]["errors"] == 0 and run[side]["requests"] > 0, (side, run[side]["first_errors"])
            assert run["ratio"] > 0
    upload = report["upload"]
    assert upload["status"] == "processed" and upload["lines"] > 10_000 and upload["validation_lines_per_s"] > 0
    assert upload["chunked_status"] == "completed" and upload["chunked_vs_cp"] > 0


def test_distributed_benchmark_times_and_measures_each_rank_beside_one_process(tmp_path):
    # FSDP2 alone: the LoRA run (DDP) is the same script's other row, and each run spawns its processes anew.
    report = bench("distributed", tmp_path, "--model", "tiny", "--procs", "2", "--steps", "2", "--batch-size", "4",
                   "--tokens", "64", "--runs", "full")
    assert set(report["runs"]) == {"full, FSDP2"}
    for run in report["runs"].values():
        assert len(run["ranks"]) == 2
        for figures in (run["one_process"], *run["ranks"]):
            assert figures["seconds_per_step"] > 0 and figures["peak_bytes"] > 0
        assert run["peak_memory_per_rank_ratio"] > 0 and run["step_time_ratio"] > 0

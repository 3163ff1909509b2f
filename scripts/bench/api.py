"""API speed: reads under load with a full database, side by side with bare Starlette; uploads against
`cp`; validation speed.

    python scripts/bench/api.py [--jobs 10000] [--events 200000] [--seconds 5] [--upload-mb 1024]
                                [--json bench-api.json]

1. Reads. The data dir is filled with --jobs jobs and --events events, spread evenly over the jobs
   (through storage/, before the server starts, since the API has no way to write events), then a
   real `gxft serve --no-worker` answers job retrieve, job list (limit 20) and events list (limit 20)
   from 1 and from 32 concurrent clients for --seconds each: requests/s and p50/p99 latency. Each row
   runs again at once against the baseline, scripts/bench/bare_starlette.py, which answers GXFT's own
   answers with no middleware, authentication or storage: the ratio is what GXFT's own work costs,
   and unlike the absolute figures it travels between machines. The load comes from one asyncio
   process holding one keep-alive HTTP/1.1 connection per client, so that the client costs little
   of the machine the servers run on.
2. Upload. A JSONL training file of --upload-mb MB goes to POST /v1/files (curl, streaming), then to
   the Uploads API in 64 MB parts (the openai SDK's `uploads.upload_file_chunked`, which sends them one
   after another; the time includes joining them at completion) and, as the baseline, through `cp` to
   the same disk: MB/s of each, and the server's resident memory before and at its peak (VmHWM, reset
   between the two uploads).
3. Validation. The seconds from the upload's answer to `processed`: lines/s.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from compat_tests.http_load import load, run_loop  # noqa: E402
from compat_tests.server_process import ServerProcess, free_port  # noqa: E402
from contract.ids import new_id  # noqa: E402
from scripts.bench.common import machine, print_table  # noqa: E402
from server.config import DEFAULT_PROJECT, Settings  # noqa: E402
from storage.database import Database  # noqa: E402
from storage.jobs import JobRecord, JobRepository  # noqa: E402


def fill(data_dir: Path, job_count: int, event_count: int) -> list[str]:
    data_dir.mkdir(parents=True)
    settings = Settings(data_dir=data_dir)
    jobs = JobRepository(Database(settings.database_path))
    now = int(time.time())
    ids = []
    with jobs.db.transaction():
        for index in range(job_count):
            job = JobRecord(
                id=new_id("ftjob-"), project=DEFAULT_PROJECT, model="gxft/tiny-chat", base_model="gxft/tiny-chat",
                training_file="file-bench", validation_file=None, status="succeeded",
                created_at=now - job_count + index,
                finished_at=now, seed=index, suffix=None, model_name_id=f"bench{index}", method_type="supervised",
                hyperparameters={"n_epochs": 1},
                resolved={"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 1.0},
                metadata=None, integrations=[], trained_tokens=1000, trained_steps=10, total_steps=10,
            )
            jobs.insert(job)
            ids.append(job.id)
        for index in range(event_count):
            step = index // job_count + 1  # each job's events in step order, evenly spread
            jobs.add_event(ids[index % job_count], f"Step {step}/10: training loss=1.00", type="metrics",
                           data={"step": step, "total_steps": 10, "train_loss": 1.0})
    return ids

def start_bare(folder: Path, server: ServerProcess, job_id: str) -> tuple[subprocess.Popen, int]:
    """The baseline app, holding GXFT's answers for one job, its page of jobs and its page of events."""
    headers = {"Authorization": "Bearer sk-bench"}
    answers = {name: httpx2.get(server.base_url + path, headers=headers).json() for name, path in (
        ("job", f"/v1/fine_tuning/jobs/{job_id}"), ("jobs", "/v1/fine_tuning/jobs?limit=20"),
        ("events", f"/v1/fine_tuning/jobs/{job_id}/events?limit=20"))}
    (folder / "answers.json").write_text(json.dumps(answers))
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench" / "bare_starlette.py"), "--port",
                                str(port), "--answers", str(folder / "answers.json")])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/v1/fine_tuning/jobs", timeout=1).status_code == 200:
                return process, port
        except httpx2.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the bare Starlette baseline did not start")


def side_by_side(gxft_port: int, bare_port: int, paths: list[str], clients: int, seconds: float) -> dict:
    gxft = run_loop(load(gxft_port, paths, clients, seconds))
    bare = run_loop(load(bare_port, paths, clients, seconds))
    return {"clients": clients, "gxft": gxft, "bare": bare,
            "ratio": gxft["requests_per_second"] / bare["requests_per_second"]}


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)

def write_training_file(path: Path, megabytes: int) -> int:
    line = json.dumps({"messages": [{"role": "user", "content": "What is the capital of France? " * 3},
                                    {"role": "assistant", "content": "Paris is the capital of France. " * 3}]})
    block = (line + "\n") * 1000
    lines = 0
    with open(path, "w") as stream:
        while stream.tell() < megabytes * 1_000_000:
            stream.write(block)
            lines += 1000
    return lines

def bench_upload(server: ServerProcess, folder: Path, megabytes: int) -> dict:
    source = folder / "upload.jsonl"
    lines = write_training_file(source, megabytes)
    size = source.stat().st_size
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    shutil.copyfile(source, folder / "copy.jsonl")
    os.sync()
    cp_seconds = time.perf_counter() - started
    (folder / "copy.jsonl").unlink()

    pid = server.process.pid
    rss_before = memory_kib(pid, "VmRSS")
    started = time.perf_counter()
    answer = subprocess.run(
        ["curl", "-sS", "-H", "Authorization: Bearer sk-bench", "-F", "purpose=fine-tune", "-F", f"file=@{source}",
         f"{server.base_url}/v1/files"], capture_output=True, text=True, check=True)
    upload_seconds = time.perf_counter() - started
    peak = memory_kib(pid, "VmHWM")
    file_id = json.loads(answer.stdout)["id"]
    client = server.client("sk-bench")
    while (file := client.files.retrieve(file_id)).status not in ("processed", "error"):
        time.sleep(0.05)
    validation_seconds = time.perf_counter() - started - upload_seconds

    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from the resident memory of now
    chunked_rss_before = memory_kib(pid, "VmRSS")
    started = time.perf_counter()
    chunked = client.uploads.upload_file_chunked(file=source, mime_type="text/jsonl", purpose="fine-tune")
    chunked_seconds = time.perf_counter() - started
    chunked_peak = memory_kib(pid, "VmHWM")
    assert chunked.file is not None and chunked.file.bytes == size
    source.unlink()
    return {"bytes": size, "lines": lines, "status": file.status,
            "upload_mb_per_s": size / 1e6 / upload_seconds, "cp_mb_per_s": size / 1e6 / cp_seconds,
            "upload_vs_cp": cp_seconds / upload_seconds,
            "server_rss_before_mib": rss_before / 1024, "server_peak_rss_mib": peak / 1024,
            "validation_seconds": validation_seconds, "validation_lines_per_s": lines / validation_seconds,
            "chunked_status": chunked.status, "chunked_mb_per_s": size / 1e6 / chunked_seconds,
            "chunked_vs_cp": cp_seconds / chunked_seconds, "chunked_server_rss_before_mib": chunked_rss_before / 1024,
            "chunked_server_peak_rss_mib": chunked_peak / 1024}

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument("--json", type=Path, default=Path("bench-api.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gxft-bench-api-") as temp:
        folder = Path(temp)
        ids = fill(folder / "data", args.jobs, args.events)
        server = ServerProcess(folder / "data", worker=False,
                               env={"GXFT_MAX_UPLOAD_BYTES": str(2 * args.upload_mb * 1_000_000 or 1)})
        bare, bare_port = start_bare(folder, server, ids[0])
        try:
            sample = random.Random(0).sample(ids, min(len(ids), 1000))
            endpoints = {
                "job retrieve": [f"/v1/fine_tuning/jobs/{job_id}" for job_id in sample],
                "job list (20)": ["/v1/fine_tuning/jobs?limit=20"],
                "events list (20)": [f"/v1/fine_tuning/jobs/{job_id}/events?limit=20" for job_id in sample],
            }
            reads = {name: [side_by_side(server.port, bare_port, paths, clients, args.seconds) for clients in (1, 32)]
                     for name, paths in endpoints.items()}
            upload = bench_upload(server, folder, args.upload_mb) if args.upload_mb else None
        finally:
            bare.terminate()
            bare.wait()
            server.stop()

    report = {"benchmark": "api", "machine": machine(), "stored": {"jobs": args.jobs, "events": args.events},
              "reads": reads, "upload": upload}
    args.json.write_text(json.dumps(report, indent=2))
    print(f"{args.jobs:,} jobs and {args.events:,} events stored; {args.seconds:g} s per row, each run against GXFT "
          "and then bare Starlette answering the same JSON")
    bare_retrieve = {run["clients"]: run["bare"]["requests_per_second"] for run in reads["job retrieve"]}
    rows = []
    for name, runs in reads.items():
        for run in runs:
            gxft, bare = run["gxft"], run["bare"]
            rows.append([name, run["clients"], gxft["requests_per_second"], gxft["p50_ms"], gxft["p99_ms"],
                         bare["requests_per_second"], bare["p50_ms"], run["ratio"],
                         gxft["requests_per_second"] / bare_retrieve[run["clients"]], gxft["errors"] + bare["errors"]])
    print_table(["endpoint", "clients", "GXFT req/s", "p50 ms", "p99 ms", "bare req/s", "bare p50 ms", "GXFT/bare",
                 "GXFT/bare retrieve", "errors"], rows)
    if upload:
        print(f"\nUpload of {upload['bytes'] / 1e6:,.0f} MB ({upload['lines']:,} lines):")
        print_table(["upload", "MB/s", "cp MB/s", "upload/cp", "server RSS before MiB", "server peak MiB",
                     "validation lines/s"],
                    [["POST /v1/files", upload["upload_mb_per_s"], upload["cp_mb_per_s"], upload["upload_vs_cp"],
                      upload["server_rss_before_mib"], upload["server_peak_rss_mib"],
                      upload["validation_lines_per_s"]],
                     ["Uploads API, 64 MB parts", upload["chunked_mb_per_s"], upload["cp_mb_per_s"],
                      upload["chunked_vs_cp"], upload["chunked_server_rss_before_mib"],
                      upload["chunked_server_peak_rss_mib"], None]])
    print(f"JSON: {args.json}")
    return 0

if __name__ == "__main__":
    sys.exit(main())

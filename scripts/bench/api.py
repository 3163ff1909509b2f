"""API speed: reads under load with a full database, uploads against `cp`, validation speed.

    python scripts/bench/api.py [--jobs 10000] [--events 100000] [--seconds 5] [--upload-mb 1024]
                                [--json bench-api.json]

1. Reads. The data dir is filled with --jobs jobs and --events events (through storage/, before the
   server starts, since the API has no way to write events), then a real `gxft serve --no-worker`
   answers job retrieve, job list (limit 20) and events list (limit 20) from 1 and from 32 concurrent
   clients for --seconds each: requests/s and p50/p99 latency. The load comes from one asyncio
   process holding one keep-alive HTTP/1.1 connection per client, so that the client costs little
   of the machine the server runs on.
2. Upload. A JSONL training file of --upload-mb MB goes to POST /v1/files (curl, streaming) and, as
   the baseline, through `cp` to the same disk: MB/s of each, and the server's resident memory before
   and at its peak (VmHWM).
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from compat_tests.http_load import load, run_loop  # noqa: E402
from compat_tests.server_process import ServerProcess  # noqa: E402
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
            step = index // job_count + 1
            jobs.add_event(ids[index % job_count], f"Step {step}/10: training loss=1.00", type="metrics",
                           data={"step": step, "total_steps": 10, "train_loss": 1.0})
    return ids

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
    source.unlink()
    return {"bytes": size, "lines": lines, "status": file.status,
            "upload_mb_per_s": size / 1e6 / upload_seconds, "cp_mb_per_s": size / 1e6 / cp_seconds,
            "upload_vs_cp": cp_seconds / upload_seconds,
            "server_rss_before_mib": rss_before / 1024, "server_peak_rss_mib": peak / 1024,
            "validation_seconds": validation_seconds, "validation_lines_per_s": lines / validation_seconds}

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument("--json", type=Path, default=Path("bench-api.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gxft-bench-api-") as temp:
        folder = Path(temp)
        ids = fill(folder / "data", args.jobs, args.events)
        server = ServerProcess(folder / "data", worker=False,
                               env={"GXFT_MAX_UPLOAD_BYTES": str(2 * args.upload_mb * 1_000_000 or 1)})
        try:
            sample = random.Random(0).sample(ids, min(len(ids), 1000))
            endpoints = {
                "job retrieve": [f"/v1/fine_tuning/jobs/{job_id}" for job_id in sample],
                "job list (20)": ["/v1/fine_tuning/jobs?limit=20"],
                "events list (20)": [f"/v1/fine_tuning/jobs/{job_id}/events?limit=20" for job_id in sample],
            }
            reads = {name: [run_loop(load(server.port, paths, clients, args.seconds)) for clients in (1, 32)]
                     for name, paths in endpoints.items()}
            upload = bench_upload(server, folder, args.upload_mb) if args.upload_mb else None
        finally:
            server.stop()

    report = {"benchmark": "api", "machine": machine(), "stored": {"jobs": args.jobs, "events": args.events},
              "reads": reads, "upload": upload}
    args.json.write_text(json.dumps(report, indent=2))
    print(f"{args.jobs:,} jobs and {args.events:,} events stored; {args.seconds:g} s per row")
    print_table(["endpoint", "clients", "requests/s", "p50 ms", "p99 ms", "errors"],
                [[name, r["clients"], r["requests_per_second"], r["p50_ms"], r["p99_ms"], r["errors"]]
                 for name, runs in reads.items() for r in runs])
    if upload:
        print(f"\nUpload of {upload['bytes'] / 1e6:,.0f} MB ({upload['lines']:,} lines):")
        print_table(["upload MB/s", "cp MB/s", "upload/cp", "server RSS before MiB", "server peak MiB",
                     "validation lines/s"],
                    [[upload["upload_mb_per_s"], upload["cp_mb_per_s"], upload["upload_vs_cp"],
                      upload["server_rss_before_mib"], upload["server_peak_rss_mib"],
                      upload["validation_lines_per_s"]]])
    print(f"JSON: {args.json}")
    return 0

if __name__ == "__main__":
    sys.exit(main())

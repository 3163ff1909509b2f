"""Job latency on the embedded default: seconds from POST /v1/fine_tuning/jobs to `running`, to the first
metrics event and to `succeeded`, for a tiny job on gxft/tiny-chat.

    python scripts/bench/job.py [--runs 5] [--json bench-job.json]

A real `gxft serve` (with its embedded worker) runs the same job --runs times, one after the other;
the client polls the job and its events every 10 ms. The table gives the median and the spread.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from compat_tests.server_process import ServerProcess  # noqa: E402
from scripts.bench.common import machine, print_table  # noqa: E402

POLL_SECONDS = 0.01


def one_job(client, file_id: str) -> dict[str, float]:
    created = time.perf_counter()
    job = client.fine_tuning.jobs.create(model="gxft/tiny-chat", training_file=file_id, seed=0,
                                         hyperparameters={"n_epochs": 1})
    marks: dict[str, float] = {}
    while "succeeded" not in marks:
        job = client.fine_tuning.jobs.retrieve(job.id)
        now = time.perf_counter() - created
        if job.status in ("failed", "cancelled"):
            raise RuntimeError(f"job {job.id} {job.status}: {job.error}")
        if job.status in ("running", "succeeded"):
            marks.setdefault("running", now)
        if "first_metrics" not in marks and any(
            event.type == "metrics" for event in client.fine_tuning.jobs.list_events(job.id, limit=5)
        ):
            marks["first_metrics"] = time.perf_counter() - created
        if job.status == "succeeded":
            marks["succeeded"] = now
        time.sleep(POLL_SECONDS)
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("bench-job.json"))
    args = parser.parse_args()

    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Answer {i}."}]}
            for i in range(16)]
    with tempfile.TemporaryDirectory(prefix="gxft-bench-job-") as temp:
        server = ServerProcess(Path(temp) / "data")
        try:
            client = server.client()
            content = "".join(json.dumps(row) + "\n" for row in rows).encode()
            file = client.files.create(file=("bench.jsonl", content), purpose="fine-tune")
            file_id = client.files.wait_for_processing(file.id, poll_interval=0.05).id
            first = one_job(client, file_id)  # the worker's first job also imports the training stack
            runs = [one_job(client, file_id) for _ in range(args.runs)]
        finally:
            server.stop()
    figures = {mark: {"median_s": statistics.median(run[mark] for run in runs),
                      "min_s": min(run[mark] for run in runs), "max_s": max(run[mark] for run in runs)}
               for mark in ("running", "first_metrics", "succeeded")}
    report = {"benchmark": "job", "machine": machine(), "first_job": first, "runs": runs, "figures": figures,
              "job": {"model": "gxft/tiny-chat", "examples": len(rows), "n_epochs": 1}}
    args.json.write_text(json.dumps(report, indent=2))
    print(f"A {len(rows)}-example job on gxft/tiny-chat, embedded worker, {args.runs} runs after a warm-up "
          f"(polled every {POLL_SECONDS * 1000:.0f} ms)")
    print_table(["from create to", "median s", "min s", "max s"],
                [[mark, f["median_s"], f["min_s"], f["max_s"]] for mark, f in figures.items()])
    print("The first job after start: " + ", ".join(f"{mark} {seconds:.2f} s" for mark, seconds in first.items()))
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

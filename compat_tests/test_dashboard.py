"""The web dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real server
and worker: upload, create, watch to succeeded with the loss chart drawn, download a checkpoint file,
chat with the model, cancel another job, and see API errors on the page."""

import os
import shutil
from pathlib import Path

import pytest

from compat_tests.conftest import SAMPLE_DATA, unavailable
from compat_tests.test_files import chat_line, jsonl, processed
from compat_tests.test_fine_tuning import TINY

CHROMIUM = "/usr/bin/chromium"
# Without these, Chromium reaches for Google's services, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = os.environ.get("GXFT_SCREENSHOTS")  # a folder to keep them in (scripts/dashboard_screenshots.py)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        unavailable("Chromium is not installed (scripts/install-test-packages installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server, tmp_path):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server.base_url + "/")  # a server without keys: no key to enter
    yield page
    context.close()


def shoot(page, tmp_path, name: str) -> None:
    page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
    if SCREENSHOTS:
        shutil.copy(tmp_path / f"{name}.png", Path(SCREENSHOTS) / f"{name}.png")


def test_whole_fine_tuning_flow_in_the_browser(page, server, tmp_path):
    training = tmp_path / "train.jsonl"
    training.write_bytes(jsonl(chat_line(i) for i in range(24)))
    page.wait_for_selector(f"#model option[value='{TINY}']", state="attached")
    page.set_input_files("#training-file", training)
    page.set_input_files("#validation-file", SAMPLE_DATA / "sample_validation_data.jsonl")
    page.click("#toggle-advanced")
    page.fill("#n-epochs", "3")
    page.fill("#batch-size", "4")
    page.fill("#lora-r", "4")
    shoot(page, tmp_path, "dashboard-fine-tune")
    page.click("#create-job")  # clicked before validation ends: the page waits for the files

    page.wait_for_url("**/#/jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#job-info [data-status='succeeded']", timeout=120_000)
    assert page.text_content("[data-field='ID']") == job_id
    assert page.text_content("[data-field='Model']") == TINY
    steps = page.text_content("[data-field='Steps']")
    done, total = steps.split(" of ")
    assert done == total and int(total) > 0
    assert "The job has successfully completed" in page.text_content("#events")
    assert page.text_content("#job-actions") == ""  # no controls on a finished job
    page.wait_for_selector("#loss polyline[data-series='train']")
    points = page.get_attribute("#loss polyline[data-series='train']", "points").split()
    assert len(points) == int(total)
    assert page.query_selector("#loss polyline[data-series='valid']") is not None
    assert page.is_hidden("#reward")  # a reward curve is a reinforcement job's

    page.wait_for_selector("#checkpoints button.download")
    button = page.query_selector("#checkpoints button.download")
    name = button.text_content().removeprefix("⤓ ")
    with page.expect_download() as download:
        button.click()
    saved = tmp_path / "download" / name
    download.value.save_as(saved)
    assert download.value.suggested_filename == name and saved.stat().st_size > 0
    file_id = button.get_attribute("data-file")
    assert saved.read_bytes() == server.client().files.content(file_id).read()

    page.fill("#chat-input", "Question 3?")
    page.click("#chat-send")
    page.wait_for_selector("#chat-log .answer")
    # What a tiny model trained for a few seconds says varies (sometimes only newlines); that it answered does not.
    assert page.text_content("#chat-log .answer").startswith("Model: ")
    assert page.is_hidden("#error")
    shoot(page, tmp_path, "dashboard-job")

    page.click("nav a[data-nav='jobs']")
    page.wait_for_selector(f"tr[data-id='{job_id}']")
    page.click("nav a[data-nav='files']")
    page.wait_for_selector("td:text('train.jsonl')")
    assert page.is_visible("#error") is False


def test_cancel_a_running_job_from_its_page(page, server):
    client = server.client()
    train = processed(client, jsonl(chat_line(i) for i in range(24)))
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                         hyperparameters={"n_epochs": 50, "batch_size": 1})
    page.goto(f"{server.base_url}/#/jobs/{job.id}")
    page.wait_for_selector("#job-info [data-status='running']", timeout=60_000)
    page.click("#job-cancel")
    page.wait_for_selector("#job-info [data-status='cancelled']")
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert page.query_selector("#job-cancel") is None
    assert page.text_content("#job-actions") == ""


def test_a_reinforcement_job_shows_its_reward_curve(page, server, tmp_path):
    client = server.client()
    rows = [{"messages": [{"role": "user", "content": f"Say yes {i}"}], "answer": "yes"} for i in range(10)]
    train = processed(client, jsonl(rows))
    grader = {"type": "text_similarity", "name": "yes", "input": "{{sample.output_text}}",
              "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"}
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, validation_file=train.id, method={
        "type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": {
            "n_epochs": 2, "batch_size": 5, "max_completion_tokens": 4, "eval_interval": 2}}})
    page.goto(f"{server.base_url}/#/jobs/{job.id}")
    page.wait_for_selector("#job-info [data-status='succeeded']", timeout=120_000)
    page.wait_for_selector("#reward polyline[data-series='train']")
    assert "Reward" in page.text_content("#reward h2")
    assert len(page.get_attribute("#reward polyline[data-series='train']", "points").split()) == 4
    # Validation before training (step 0), then at steps 2 and 4: three points, the first at the left edge.
    validation = page.get_attribute("#reward polyline[data-series='valid']", "points").split()
    assert len(validation) == 3 and validation[0].startswith("48.0,")
    assert "validation mean reward" in page.text_content("#reward .legend")
    shoot(page, tmp_path, "dashboard-reinforcement-job")


def test_validation_problems_and_api_errors_show_on_the_page(page, server, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(jsonl(chat_line(i) for i in range(12)) + b"{not json\n")
    page.wait_for_selector(f"#model option[value='{TINY}']", state="attached")
    page.set_input_files("#training-file", broken)
    page.wait_for_selector("#training-state.bad")
    assert "line 13" in page.text_content("#training-state")
    page.click("#create-job")
    page.wait_for_selector("#error:not([hidden])")
    assert "line 13" in page.text_content("#error")

    page.goto(f"{server.base_url}/#/jobs/ftjob-doesnotexist")
    page.wait_for_selector("#error:not([hidden])")
    assert "No such fine-tuning job" in page.text_content("#error")


def test_a_server_without_keys_opens_ready_and_one_with_keys_asks_calmly(browser, page, start_server):
    page.wait_for_selector(f"#model option[value='{TINY}']", state="attached")
    assert page.is_hidden("#error") and page.query_selector("#key-prompt") is None

    keyed = start_server(env={"GXFT_API_KEYS": "sk-team=team"}, name="keyed")
    context = browser.new_context()
    asking = context.new_page()
    asking.goto(keyed.base_url + "/")
    asking.wait_for_selector("#key-prompt")
    assert "This server asks for an API key" in asking.text_content("#key-prompt")
    assert asking.is_hidden("#error")
    asking.fill("#api-key", "sk-wrong")
    asking.click("#key-form button")
    asking.wait_for_selector("#key-prompt:text('not one of this server')")
    asking.fill("#api-key", "sk-team")
    asking.click("#key-form button")
    asking.wait_for_selector(f"#model option[value='{TINY}']", state="attached")
    assert asking.query_selector("#key-prompt") is None and asking.is_hidden("#error")
    context.close()

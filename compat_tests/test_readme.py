"""Every Python and shell block of the README, and of the `docs/` pages that say theirs run as pasted, run against
the server the README's first command starts, so that the pages cannot drift from the code.

The README's first block is the two commands: the test command is what runs this test, and the install it
begins with is checked to cover the first command's; the server is started with that command's own words.
The quick start is run by the `quick_start` fixture, which the real-model tests share: its recipe is the one
they prove learns all ten facts.
"""

import re
import tomllib

import pytest

from compat_tests.documentation_blocks import (
    PAGES_ADDRESS,
    ROOT,
    CodeBlock,
    code_blocks,
    error_envelopes,
    masked,
    quick_start_block,
    run_block,
    runnable_blocks,
    the_two_commands,
)

BLOCKS = runnable_blocks()
QUICK_START = quick_start_block()
OTHER_BLOCKS = [block for block in BLOCKS[1:] if block != QUICK_START]
TERMINAL = ("succeeded", "failed", "cancelled")


def test_the_readme_opens_with_the_two_commands():
    assert BLOCKS[0] == code_blocks("README.md")[0] and BLOCKS[0].line == 3
    install_and_serve, install_and_test = the_two_commands()
    assert install_and_test == (ROOT / ".ci" / "run").read_text().splitlines()[-1]

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    test_script = (ROOT / "scripts" / "install-test-packages").read_text()
    *installs, serve = install_and_serve.split(" && ")
    assert serve.startswith("gxft serve")
    for install in installs:
        editable = re.fullmatch(r'python3 -m pip install -e "\.\[(\w+)\]" -c constraints\.txt', install)
        if editable:
            assert set(extras[editable.group(1)]) <= set(extras["test"]), install
        else:
            assert install.startswith("python3 -m pip install --no-deps "), install
            assert install.replace("pip install", "pip install -q") in test_script, install


def test_the_quick_start_prints_what_the_readme_shows(quick_start):
    assert quick_start.result.returncode == 0, quick_start.result.stderr
    assert QUICK_START.shown_output is not None
    assert masked(quick_start.result.stdout) == masked(QUICK_START.shown_output)


@pytest.mark.parametrize("block", OTHER_BLOCKS, ids=[block.name for block in OTHER_BLOCKS])
def test_the_block_runs_as_pasted(block: CodeBlock, readme_server, quick_start):
    client = readme_server.client()
    # The docs pages continue the quick start: their Python uses its `client`.
    prelude = "" if block.page == "README.md" or block.language != "python" else _quick_start_client_lines()
    if "curl " in block.text or "OpenAI(" in prelude + block.text:
        assert PAGES_ADDRESS in prelude + block.text, "a block that talks to the server must say its address"
    # The quick start has left a fine-tuned model: the blocks that need one name the newest ($MODEL in shell).
    newest = next(job.fine_tuned_model for job in client.fine_tuning.jobs.list() if job.status == "succeeded")

    result = run_block(block, readme_server.base_url, prelude, env={"MODEL": newest})
    try:
        assert result.returncode == 0, result.stderr
        assert error_envelopes(result.stdout) == [], result.stdout
        if block.shown_output is not None:
            assert masked(result.stdout) == masked(block.shown_output)
    finally:
        # A block may start a job and leave it training (the curl example does): the worker is shared.
        for job in client.fine_tuning.jobs.list():
            if job.status not in TERMINAL:
                client.fine_tuning.jobs.cancel(job.id)


def _quick_start_client_lines() -> str:
    lines = QUICK_START.text.splitlines(keepends=True)
    return "".join(lines[:next(i for i, line in enumerate(lines) if line.startswith("client = ")) + 1])

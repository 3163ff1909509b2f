"""The code blocks of the pages that promise their Python and shell blocks run as pasted (the README and some
`docs/` pages), and how a test runs one against a real server.

A block is run as a user pastes it, from the top of the repository; the only change is the server's address,
`http://127.0.0.1:8000` in the pages, which becomes the test server's (each block that talks to a server must
say that address, so the change cannot miss). A `text` block that follows a code block with only prose between
is what that block prints; the random end of a fine-tuned model's name differs from run to run, so it is
masked on both sides.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The docs pages not listed hold transcripts (`console`: cli.md, models.md), templates for several machines
# with placeholders (deployment.md) or configuration (`toml`); their commands are tested by the CLI, import,
# migrate and scale-out tests.
RUNNABLE_PAGES = ("README.md", "docs/fine-tuning.md", "docs/serving.md", "docs/api-differences.md")
PAGES_ADDRESS = "http://127.0.0.1:8000"
RUNNABLE_LANGUAGES = ("python", "bash")

_FENCE = re.compile(r"^```(\w*)\s*$")
# A fine-tuned model's name ends in a random part: `ft:base:project:suffix:Xy12Ab34`.
_MODEL_NAME_END = re.compile(r"(ft:\S+:)[A-Za-z0-9]{8}\b")


@dataclass(frozen=True)
class CodeBlock:
    page: str
    line: int  # of the opening fence, counted from 1
    language: str
    text: str
    shown_output: str | None  # the `text` block that shows what this one prints

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    def commands(self) -> list[str]:
        """A shell block's command lines, without their comments."""
        return [line.split("   #")[0].strip() for line in self.text.splitlines() if line.strip()]


def code_blocks(page: str) -> list[CodeBlock]:
    lines = (ROOT / page).read_text().splitlines()
    fenced: list[tuple[int, str, str, bool]] = []  # line, language, text, whether a heading separates it from the last
    heading_between = False
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            heading_between |= lines[index].startswith("#")
            index += 1
            continue
        closing = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        fenced.append((index + 1, opening.group(1), "\n".join(lines[index + 1:closing]) + "\n", heading_between))
        heading_between = False
        index = closing + 1
    blocks = []
    for (line, language, text, _), following in zip(fenced, [*fenced[1:], None], strict=True):
        shows_output = following is not None and following[1] == "text" and not following[3]
        blocks.append(CodeBlock(page, line, language, text, following[2] if following and shows_output else None))
    return blocks


def runnable_blocks() -> list[CodeBlock]:
    return [block for page in RUNNABLE_PAGES for block in code_blocks(page) if block.language in RUNNABLE_LANGUAGES]


def masked(text: str) -> str:
    return _MODEL_NAME_END.sub(r"\1<generated>", text)


def quick_start_block() -> CodeBlock:
    """The README's quick start: its first Python block."""
    return next(block for block in code_blocks("README.md") if block.language == "python")


def the_two_commands() -> tuple[str, str]:
    """The README's first block: install and serve, install and test."""
    block = code_blocks("README.md")[0]
    install_and_serve, install_and_test = block.commands()
    return install_and_serve, install_and_test


def readme_serve_command() -> list[str]:
    """How the README's first command starts the server, with `gxft` found where the install put it."""
    program, *arguments = shlex.split(the_two_commands()[0].split(" && ")[-1])
    found = shutil.which(program, path=_search_path())
    assert found is not None, f"{program} is not installed"
    return [found, *arguments]


def _search_path() -> str:
    return os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])


def run_block(block: CodeBlock, base_url: str, prelude: str = "", env: dict[str, str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a block from the top of the repository, with `gxft` on the PATH as the install puts it there."""
    source = (prelude + block.text).replace(PAGES_ADDRESS, base_url)
    command = [sys.executable, "-"] if block.language == "python" else ["bash", "-"]
    return subprocess.run(command, input=source, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PATH": _search_path(), "HF_HUB_OFFLINE": "1", **(env or {})})


def error_envelopes(output: str) -> list[dict]:
    """The lines of a block's output that are an API error: curl exits 0 on a 4xx, so its output tells."""
    envelopes = []
    for line in output.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and set(value) == {"error"}:
            envelopes.append(value)
    return envelopes

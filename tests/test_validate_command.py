"""`scripts/validate_jsonl.py` and `gxft validate`: the server's validator from the command line."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)


def test_script_accepts_the_sample_training_file():
    result = run("scripts/validate_jsonl.py", str(SAMPLES / "sample_training_data.jsonl"))
    assert result.returncode == 0
    assert "OK, 10 examples in the chat format" in result.stdout


def test_script_reports_line_numbers_and_fails():
    result = run("scripts/validate_jsonl.py", str(SAMPLES / "invalid" / "bad_lines.jsonl"))
    assert result.returncode == 1
    assert "line 3: not valid JSON" in result.stdout
    assert 'line 7: messages[1] has no "content"' in result.stdout


def test_gxft_validate_checks_every_file_and_the_training_minimum():
    result = run("-m", "gxft", "validate", str(SAMPLES / "sample_training_data.jsonl"),
                 str(SAMPLES / "invalid" / "too_few_examples.jsonl"), str(SAMPLES / "invalid" / "mixed_formats.jsonl"))
    assert result.returncode == 1
    assert "sample_training_data.jsonl: OK" in result.stdout
    assert "the file has 7 example(s), but a training file must have at least 10" in result.stdout
    assert "line 12: example is in the prompt/completion format, but the file is in the chat format" in result.stdout
    relaxed = run("-m", "gxft", "validate", "--min-examples", "1", str(SAMPLES / "sample_validation_data.jsonl"))
    assert relaxed.returncode == 0


def test_missing_file_is_reported():
    result = run("-m", "gxft", "validate", "/nonexistent/train.jsonl")
    assert result.returncode == 1 and "cannot read" in result.stdout

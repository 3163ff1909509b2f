"""A python grader's `grade(sample, item)`, run in a child process with OpenAI's limits (python_child.py
says how each is enforced): no network, 2 GB of memory, 2 minutes per sample, 256 kB of source, and
1 GB for any file it writes. One child grades a whole batch of samples, so a training step pays one
interpreter start, not one per sample.
"""

import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgspec

from grading.errors import GradingFailure

CHILD = Path(__file__).with_name("python_child.py")
MAX_SOURCE_BYTES = 256 * 1024
MAX_ANSWER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class PythonLimits:
    seconds: float = 120.0  # wall time per sample
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 1024**3

    def child_limits(self, cases: int) -> dict[str, Any]:
        return {**asdict(self), "cpu_seconds": int(self.seconds * cases) + 1}


class _ChildAnswer(msgspec.Struct):
    results: list[dict[str, Any]]
    network_namespace: bool


def run_python_grader(source: str, cases: list[tuple[dict, Any]], limits: PythonLimits) -> list[float | GradingFailure]:
    """Per (sample, item): the reward, or why there is none."""
    with tempfile.TemporaryDirectory(prefix="gxft-grader-") as workdir:
        request = msgspec.json.encode({
            "source": source, "limits": limits.child_limits(len(cases)),
            "cases": [{"sample": sample, "item": item} for sample, item in cases],
        })
        try:
            finished = subprocess.run(
                [sys.executable, "-I", str(CHILD)], input=request, capture_output=True, cwd=workdir,
                env={"PATH": os.environ.get("PATH", ""), "HOME": workdir}, start_new_session=True,
                timeout=limits.seconds * len(cases) + 10,
            )
        except subprocess.TimeoutExpired:
            failure = GradingFailure("python_grader_server_error", "the grader ran past its time limit", "timeout")
            return [failure] * len(cases)
    try:
        answer = msgspec.json.decode(finished.stdout[:MAX_ANSWER_BYTES].strip().splitlines()[-1], type=_ChildAnswer)
    except (IndexError, msgspec.DecodeError):
        # The child died: killed for its CPU time or memory, or it took the interpreter down itself.
        details = (finished.stderr.decode(errors="replace")[-2000:]
                   or f"the grader's process exited with {finished.returncode}")
        failure = GradingFailure("python_grader_server_error", details, "process_died")
        return [failure] * len(cases)
    return [_outcome(result, limits) for result in answer.results]


def _outcome(result: dict[str, Any], limits: PythonLimits) -> float | GradingFailure:
    if "reward" in result:
        return float(result["reward"])
    if result.get("error") == "timeout":
        return GradingFailure("python_grader_server_error",
                              f"grade() ran past its limit of {limits.seconds:g} s for one sample", "timeout")
    return GradingFailure("python_grader_runtime_error", str(result.get("details", "")))

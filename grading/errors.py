"""Why a sample could not be graded, as one of OpenAI's `metadata.errors` flags."""

from typing import Literal

ErrorFlag = Literal[
    "formula_parse_error", "invalid_variable_error", "model_grader_parse_error", "model_grader_refusal_error",
    "model_grader_server_error", "other_error", "python_grader_runtime_error", "python_grader_server_error",
    "sample_parse_error", "truncated_observation_error", "unresponsive_reward_error",
]


class GradingFailure(Exception):
    """The sample scores 0 and `flag` is raised in the answer's errors, with `details` where it has some."""

    def __init__(self, flag: ErrorFlag, details: str, server_error_type: str | None = None):
        super().__init__(details)
        self.flag = flag
        self.details = details
        self.server_error_type = server_error_type

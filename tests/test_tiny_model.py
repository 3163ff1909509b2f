"""`scripts/make_tiny_model.py` regenerates the committed gxft/tiny-chat byte for byte."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "sample_data" / "models" / "tiny-chat"


def test_regenerated_model_is_byte_identical(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), str(tmp_path)], check=True,
                   capture_output=True)
    committed = sorted(p.name for p in COMMITTED.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name
    assert sum((COMMITTED / name).stat().st_size for name in committed) < 8 * 1024 * 1024

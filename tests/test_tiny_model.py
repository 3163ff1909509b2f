"""`scripts/make_tiny_model.py` regenerates the committed gxft/tiny-chat byte for byte.

Byte for byte except one line: transformers stamps its own version into config.json and
generation_config.json, and that stamp says which release wrote the files, not what the model is.
Every other byte (weights, tokenizer, chat template, the rest of both configs) must match.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "sample_data" / "models" / "tiny-chat"
VERSION_STAMP = re.compile(rb'\n  "transformers_version": "[^"]*",')


def _without_version_stamp(data: bytes) -> bytes:
    stripped, count = VERSION_STAMP.subn(b"", data)
    assert count <= 1, "one stamp per file, or the pattern is too loose"
    return stripped


def test_regenerated_model_is_byte_identical(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_model.py"), str(tmp_path)], check=True,
                   capture_output=True)
    committed = sorted(p.name for p in COMMITTED.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        regenerated, kept = (tmp_path / name).read_bytes(), (COMMITTED / name).read_bytes()
        if name.endswith(".json"):
            regenerated, kept = _without_version_stamp(regenerated), _without_version_stamp(kept)
        assert regenerated == kept, name
    assert sum((COMMITTED / name).stat().st_size for name in committed) < 8 * 1024 * 1024


"""`system_fingerprint`: the software an answer came from. OpenAI's advice is to read it beside `seed`:
the same seed gives the same answer while the fingerprint stays the same. Here that holds while GXFT,
torch, transformers and peft keep their versions, on the same kind of device; the device is not part of
it, since one server answers from one device, and a server moved from CPU to GPU changes versions too."""

import hashlib
from importlib.metadata import version

SYSTEM_FINGERPRINT = "fp_" + hashlib.sha256(
    " ".join(f"{package}=={version(package)}" for package in ("gxft", "torch", "transformers", "peft")).encode()
).hexdigest()[:10]

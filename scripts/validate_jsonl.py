#!/usr/bin/env python3
"""Seed 004's validate-jsonl: check JSONL training files before uploading them.

Usage: scripts/validate_jsonl.py FILE...   (exit status 1 if any file is invalid)
The same validator the server runs, so the same line-numbered messages.
"""

import sys

from gxft.cli import main

if __name__ == "__main__":
    main(["validate", *sys.argv[1:]])

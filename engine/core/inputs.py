"""Files people hand the command line (alphas, genotypes): read with a size cap, parsed without recursion errors.

A genotype or an alphas file is a few kilobytes; a path to /dev/zero, a 10 GB log or a JSON bomb of
100,000 nested brackets must end in a one-line reason, not a hang or a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["MAX_INPUT_BYTES", "read_input_text", "parse_json"]

MAX_INPUT_BYTES = 16 * 2**20  # far above any genotype or alphas file, far below what would hang a reader


def read_input_text(path: str | os.PathLike, what: str = "file") -> str:
    """The text of a small input file; a ValueError that names the path if it is unreadable, binary or too big."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise ValueError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise ValueError(f"{what} {path} is larger than {MAX_INPUT_BYTES // 2**20} MiB; refusing to read it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not UTF-8 text") from None


def parse_json(text: str, what: str = "JSON") -> Any:
    """json.loads with every failure (syntax, nesting too deep for the parser) as a one-line ValueError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to be read") from None
    except ValueError as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None

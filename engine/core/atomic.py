"""Crash-safe file IO for the run directory: atomic JSON replaces and append-only JSONL.

JSON files are replaced atomically (temp file in the same directory, fsync, then `os.replace`), so a
reader sees the old or the new file, never half of one. JSONL files are append-only and the reader skips
a torn line, so a crash loses at most the line being written.

Every reader of a run's files decodes through `loads_json`: anyone can write into a run directory, and
`json.loads` raises RecursionError (not a ValueError) on text nested deeper than the interpreter's stack,
e.g. 100,000 opening brackets, which would otherwise escape every `except ValueError` around a read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["write_bytes_atomic", "write_json_atomic", "loads_json", "read_json", "append_jsonl", "read_jsonl"]


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, then rename over it: readers see old or new, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def loads_json(text: str | bytes) -> Any:
    """`json.loads`, with every way the text can fail to decode as a ValueError (nesting too deep included)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to be read") from None


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The decoded file, or `default` when it is missing, unreadable or not JSON."""
    try:
        return loads_json(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return default


def append_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All whole lines of a JSONL file; a torn or corrupt line (a crash mid-write) is skipped."""
    return list(_iter_jsonl(Path(path)))


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return
    with f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn last line: the writer died mid-line (or is writing it now)
            try:
                row = loads_json(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row

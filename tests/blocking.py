"""Make a run file unwritable with a real OS error (a directory takes its path), race-free against the writer
thread, and put it back with every line it held."""

from __future__ import annotations

import itertools
from pathlib import Path


def block(path: Path) -> list[Path]:
    """Replace `path` by a directory; the file's lines go to numbered aside files (the writer thread may create the
    file again between a rename and the mkdir: it is moved aside once more). Returns the aside files, in order."""
    asides = []
    for i in itertools.count():
        try:
            path.mkdir()
            return asides
        except FileExistsError:
            aside = path.with_name(f"{path.name}.aside{i}")
            path.rename(aside)
            asides.append(aside)


def unblock(path: Path, asides: list[Path]) -> None:
    """Remove the directory and put the aside lines back as the file, in order."""
    path.rmdir()
    path.write_bytes(b"".join(a.read_bytes() for a in asides))
    for a in asides:
        a.unlink()

"""Make a run file unwritable with a real OS error, race-free against the writer thread, and put it back with every
line it held.

The file's path becomes a symbolic link into a folder that does not exist yet, so every open fails (ENOENT). Putting
it back creates that folder, holding the file's earlier lines, with one rename: from then on a write through the
link lands after them, and a second rename puts the file itself in the link's place. Neither step leaves a moment
at which the writer thread (which retries on its own) could write to a file that is replaced afterwards.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path


def _hold(path: Path) -> Path:
    return path.with_name(f"{path.name}.held")


def block(path: Path) -> list[Path]:
    """Replace `path` by a dangling link; the file's lines go to numbered aside files (the writer thread may create
    the file again between a rename and the link: it is moved aside once more). Returns the aside files, in order."""
    asides = []
    for i in itertools.count():
        try:
            os.symlink(Path(_hold(path).name) / path.name, path)
            return asides
        except FileExistsError:
            aside = path.with_name(f"{path.name}.aside{i}")
            path.rename(aside)
            asides.append(aside)


def unblock(path: Path, asides: list[Path]) -> None:
    """Put the aside lines back as the file, in order; lines the writer adds meanwhile follow them."""
    staging = path.with_name(f"{path.name}.staging")
    staging.mkdir()
    (staging / path.name).write_bytes(b"".join(a.read_bytes() for a in asides))
    staging.rename(_hold(path))             # the link resolves from here on
    (_hold(path) / path.name).rename(path)  # the same file takes the link's place
    _hold(path).rmdir()
    for a in asides:
        a.unlink()

"""dartboard's version, and the git commit of the source tree it runs from (when it runs from a clone).

`__version__` is the one place the version is written: pyproject.toml reads it (setuptools' `attr:`, which
parses this file without importing it), `dartboard --version` prints it and every run's config.json records it.
Torch-free and cheap: the commit is read from the .git directory's files, without starting git.
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["__version__", "git_commit", "version_record", "version_line"]

__version__ = "0.1.0"

_SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the repository root in a clone; site-packages once installed


def _git_dir(root: Path) -> Path | None:
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a worktree or submodule: "gitdir: PATH"
        text = dot_git.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            path = Path(text.split(":", 1)[1].strip())
            return path if path.is_absolute() else (root / path).resolve()
    return None


def _read_ref(git_dir: Path, ref: str) -> str | None:
    common = git_dir
    commondir = git_dir / "commondir"  # a worktree keeps its branches in the main repository's .git
    if commondir.is_file():
        common = (git_dir / commondir.read_text().strip()).resolve()
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            return loose.read_text().strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref and not line.startswith(("#", "^")):
                return parts[0]
    return None


def _is_sha(text: str | None) -> bool:
    return text is not None and len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


@functools.cache
def git_commit(root: Path | None = None) -> str | None:
    """The commit HEAD points at in the clone this code runs from; None when it is not a clone (an installed
    wheel) or the .git directory cannot be read. Uncommitted changes are not detected."""
    try:
        git_dir = _git_dir(root or _SOURCE_ROOT)
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text().strip()
        sha = _read_ref(git_dir, head[4:].strip()) if head.startswith("ref:") else head
    except OSError:
        return None
    return sha if _is_sha(sha) else None


def version_record() -> dict[str, str | None]:
    """What a run's config.json records about the code that made it: {"version": ..., "git_commit": ...}."""
    return {"version": __version__, "git_commit": git_commit()}


def version_line(prog: str = "dartboard") -> str:
    """`dartboard --version`: the version, and the commit when it is known."""
    commit = git_commit()
    return f"{prog} {__version__}" + (f" (git {commit[:12]})" if commit else "")

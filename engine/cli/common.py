"""What every command shares: the one-line argument errors, the bad-input exception, and the engine's error
types that count as bad input (exit status 2 with a one-line reason, never a traceback)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["Parser", "BadInput", "BAD_INPUT"]

# Errors the engine raises for input a user can fix, by class name (importing them all would load torch).
BAD_INPUT = ("ConfigError", "DataError", "CheckpointError", "RunDirError", "GraphvizMissingError")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


class BadInput(Exception):
    pass

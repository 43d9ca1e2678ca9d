"""`python -m engine ...`: the same command line as the installed `dartboard` command (engine/cli/)."""

import sys

from engine.cli.main import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m engine"))

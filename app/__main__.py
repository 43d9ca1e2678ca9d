"""`python -m app [options]`, also `dartboard ui`: the dashboard, started as `streamlit run app/main.py [options]`."""

import os
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    script = Path(__file__).with_name("main.py")
    command = [sys.executable, "-m", "streamlit", "run", str(script), *sys.argv[1:]]
    if os.name == "posix":
        # This process becomes the server, so Ctrl-C, SIGTERM or SIGHUP sent to it stop the server itself; a
        # launcher process in between would exit on SIGTERM and leave the server running on its port.
        os.execv(sys.executable, command)
    try:
        sys.exit(subprocess.call(command))
    except KeyboardInterrupt:  # Ctrl-C reached the server too; it has shut down
        sys.exit(130)

"""`python -m app [options]`, also `dartboard ui`: the dashboard, started as `streamlit run app/main.py [options]`."""

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    script = Path(__file__).with_name("main.py")
    try:
        sys.exit(subprocess.call([sys.executable, "-m", "streamlit", "run", str(script), *sys.argv[1:]]))
    except KeyboardInterrupt:  # Ctrl-C reached the server too; it has shut down
        sys.exit(130)

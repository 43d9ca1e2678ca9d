"""dartboard: `streamlit run app/main.py`. The page shell and navigation only; pages live in app/screens."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `streamlit run` puts app/ on the path, not the repository root
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from app import nav  # noqa: E402
from app.screens import learn, replay, runs, search, stage, sweeps, train  # noqa: E402

st.set_page_config(page_title="dartboard", page_icon=":material/target:", layout="wide")
pages = nav.register({"search": search.page, "stage": stage.page, "runs": runs.page, "replay": replay.page,
                      "learn": learn.page, "train": train.page, "sweeps": sweeps.page})
st.navigation(pages).run()

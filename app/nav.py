"""The pages of the dashboard, built in one place so main.py and in-page links use the same objects."""

from __future__ import annotations

import streamlit as st

__all__ = ["pages", "PAGE_TITLES"]

PAGE_TITLES = {"search": "Search", "train": "Train", "runs": "Runs", "replay": "Replay", "learn": "Learn"}


def pages() -> dict[str, st.Page]:
    """url path -> st.Page; Search is the default page."""
    from app.views import learn, replay, runs, search, train

    icons = {"search": ":material/monitoring:", "runs": ":material/folder_open:", "replay": ":material/replay:",
             "learn": ":material/school:", "train": ":material/model_training:"}
    funcs = {"search": search.page, "runs": runs.page, "replay": replay.page, "learn": learn.page, "train": train.page}
    return {name: st.Page(funcs[name], title=title, icon=icons[name], url_path=name, default=name == "search")
            for name, title in PAGE_TITLES.items()}


def switch_to(name: str) -> None:
    st.switch_page(pages()[name])

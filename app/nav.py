"""The pages of the dashboard by name, and switching between them by name.

main.py builds the pages from the page modules (app/screens) and registers them here; a page switches to another
by its name through `switch_to`, so this module imports no page and no page imports main.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import streamlit as st

__all__ = ["PAGE_TITLES", "DEFAULT_PAGE", "register", "switch_to"]

PAGE_TITLES = {"search": "Search", "train": "Train", "runs": "Runs", "replay": "Replay", "learn": "Learn"}
DEFAULT_PAGE = "search"
_ICONS = {"search": ":material/monitoring:", "runs": ":material/folder_open:", "replay": ":material/replay:",
          "learn": ":material/school:", "train": ":material/model_training:"}
# The pages st.navigation runs, by name: st.switch_page wants the very Page objects navigation was given.
_pages: dict[str, st.Page] = {}


def register(funcs: Mapping[str, Callable[[], None]]) -> list[st.Page]:
    """The pages of PAGE_TITLES, in its order, drawn by `funcs` (name -> page function; url path: the name);
    kept for `switch_to`."""
    _pages.update({name: st.Page(funcs[name], title=title, icon=_ICONS[name], url_path=name,
                                 default=name == DEFAULT_PAGE) for name, title in PAGE_TITLES.items()})
    return [_pages[name] for name in PAGE_TITLES]


def switch_to(name: str) -> None:
    st.switch_page(_pages[name])

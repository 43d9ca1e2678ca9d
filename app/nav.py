"""The pages of the dashboard by name, and switching between them by name.

main.py builds the pages from the page modules (app/screens) and registers them here; a page switches to another
by its name through `switch_to`, so this module imports no page and no page imports main.py.

Every page of the menu is served at its own name (/search, /stage, /train, /runs, /sweeps, /replay, /learn): a bookmark
or a link typed from the menu's word opens that page. The root URL (/) shows the Search page too, through a
hidden default page, because Streamlit serves its default page at "" only, never at its url_path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import streamlit as st

__all__ = ["PAGE_TITLES", "DEFAULT_PAGE", "ROOT_PAGE", "register", "switch_to", "url_of", "page"]

PAGE_TITLES = {"search": "Search", "stage": "Stage", "train": "Train", "runs": "Runs", "sweeps": "Sweeps",
               "replay": "Replay", "learn": "Learn"}
DEFAULT_PAGE = "search"
# The hidden page at the root URL: it draws DEFAULT_PAGE. Its own url_path is never shown (Streamlit serves the
# default page at ""), but it must differ from every menu page's.
ROOT_PAGE = "home"
_ICONS = {"search": ":material/monitoring:", "stage": ":material/co_present:", "runs": ":material/folder_open:",
          "replay": ":material/replay:", "learn": ":material/school:", "train": ":material/model_training:",
          "sweeps": ":material/stacked_line_chart:"}
# The pages st.navigation runs, by name: st.switch_page wants the very Page objects navigation was given.
_pages: dict[str, st.Page] = {}


def register(funcs: Mapping[str, Callable[[], None]]) -> list[st.Page]:
    """The pages of PAGE_TITLES, in its order, drawn by `funcs` (name -> page function; url path: the name),
    after the hidden root page; kept for `switch_to`."""
    _pages[ROOT_PAGE] = st.Page(funcs[DEFAULT_PAGE], title=PAGE_TITLES[DEFAULT_PAGE], icon=_ICONS[DEFAULT_PAGE],
                                url_path=ROOT_PAGE, default=True, visibility="hidden")
    _pages.update({name: st.Page(funcs[name], title=title, icon=_ICONS[name], url_path=name)
                   for name, title in PAGE_TITLES.items() if name in funcs})
    return [_pages[ROOT_PAGE], *(_pages[name] for name in PAGE_TITLES if name in _pages)]


def page(name: str) -> st.Page | None:
    """The registered Page of `name` (for st.page_link), None before main.py registered the pages."""
    return _pages.get(name)


def url_of(name: str) -> str:
    """The path a page is served at (for links and tests): /search, /stage, ..."""
    return f"/{name}"


def switch_to(name: str, query_params: Mapping[str, str] | None = None) -> None:
    """Go to page `name`, with `query_params` (or none) in its URL (the page's state kept in the address: ?run=...).

    Always with a mapping: without one, Streamlit clears the old page's parameters through the check that refuses
    to clear a parameter bound to a widget (`bind="query-params"`, e.g. the Runs table's toggle), and the switch
    fails; a mapping replaces them all."""
    st.switch_page(_pages[name], query_params=dict(query_params or {}))

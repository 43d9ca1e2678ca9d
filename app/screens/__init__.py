"""The pages of the dashboard, one module each (app/nav.py lists them); its `page()` draws the page.

Not named pages/: Streamlit takes a pages/ folder beside the main script as a multipage app of its own and would
run it instead of app/nav.py's st.navigation on a session's first run.
"""

"""dartboard's Streamlit dashboard: pages and panels drawn from the engine's snapshots."""

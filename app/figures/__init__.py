"""Pure functions from search data to what the dashboard draws: plotly figures, Vega-Lite specs, DOT source, frames.

No Streamlit here: every function takes plain data (numpy arrays, metric rows, alphas records, genotypes) and
returns a figure, a spec and its data, DOT source or a pandas `DataFrame`, so it is tested without a browser.
One module per kind of figure; callers import the module they use.
"""

"""One module per panel or page; each `render(...)` takes plain data and runs on fixture data."""

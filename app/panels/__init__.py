"""The pieces the pages share (the sidebar, the live panel, cells, curves, controls, exports, ...); each
`render(...)` takes plain data and runs on fixture data."""

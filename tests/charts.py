"""What an AppTest page holds in its charts: the Vega-Lite spec and data of the chart in a keyed container, as the
browser is given them (shared by the dashboard's tests)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = ["blocks", "chart", "title"]


def blocks(node: Any):
    """`node` and every element below it, depth first."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from blocks(child)


def chart(at: Any, key: str) -> tuple[dict, pd.DataFrame]:
    """The Vega-Lite spec and data of the chart in the container of key `key`: what the browser is given."""
    boxes = [b for b in blocks(at.main) if str(getattr(getattr(b, "proto", None), "id", "")).endswith(f"-{key}")]
    assert len(boxes) == 1, f"{len(boxes)} containers with key {key!r}"
    charts = [c for c in blocks(boxes[0]) if getattr(c, "type", None) == "vega_lite_chart"]
    assert len(charts) == 1, f"{len(charts)} charts in {key!r}"
    return json.loads(charts[0].proto.spec), pa.ipc.open_stream(charts[0].proto.data.data).read_all().to_pandas()


def title(spec: dict) -> str:
    """A spec's title text (a plain string, or the `text` of a title object)."""
    t = spec.get("title", "")
    return t.get("text", "") if isinstance(t, dict) else t

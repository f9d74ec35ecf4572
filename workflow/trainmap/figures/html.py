"""Self-contained interactive pages: one Plotly figure, a side panel and a little script.

Every page inlines plotly.js (``include_plotlyjs=True``) and its data, so that it opens
without network access (on a cluster, on a laptop offline). The page's own data travel as
JSON in a ``<script type="application/json">`` block that the page's script reads; the
output is deterministic (fixed div id, sorted JSON keys), so a rerun rewrites the same bytes.
"""

import base64
import html
import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from trainmap.io.atomic import atomic_path

STYLE = """
body { font-family: sans-serif; margin: 0; display: flex; flex-wrap: wrap; color: #333; }
#figure { flex: 0 0 auto; }
#panel { flex: 1 1 320px; min-width: 280px; padding: 12px 16px; font-size: 13px;
         border-left: 1px solid #ddd; max-height: 100vh; overflow-y: auto; }
#panel h2 { font-size: 15px; margin: 4px 0 8px; }
#panel table { border-collapse: collapse; margin-top: 6px; }
#panel td, #panel th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; }
#panel .seed { cursor: pointer; color: #2F4B7C; text-decoration: underline; }
#panel .note { color: #777; }
"""


def packed(values: np.ndarray, dtype: str) -> str:
    """A numeric array as base64 of its little-endian bytes (decoded by the page's
    ``unpack``); far smaller than JSON numbers for long series."""
    little = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    return base64.b64encode(little.tobytes()).decode("ascii")


UNPACK_JS = """
function unpack(text, Kind) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Kind(bytes.buffer);
}
"""


def page(title: str, figure: go.Figure, panel_html: str, data: dict, script: str) -> str:
    """The whole HTML document: the figure (div ``figure``, plotly.js inlined), the panel,
    the data as JSON (``<script id="page-data">``) and the page's script, which runs once
    the figure is drawn (``gd`` is the figure's div, ``DATA`` the parsed data)."""
    div = figure.to_html(
        full_html=False,
        include_plotlyjs=True,
        div_id="figure",
        config={"displaylogo": False, "responsive": False},
    )
    payload = json.dumps(data, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
{div}
<div id="panel">{panel_html}</div>
<script id="page-data" type="application/json">{payload}</script>
<script>
(function () {{
  const gd = document.getElementById("figure");
  const DATA = JSON.parse(document.getElementById("page-data").textContent);
{UNPACK_JS}
{script}
}})();
</script>
</body>
</html>
"""


def write_page(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

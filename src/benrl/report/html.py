"""report.html: report.md rendered to one self-contained page.

The figures are inlined as base64 PNGs, so the page can be mailed or archived on its own
without the figure files beside it.
"""

from __future__ import annotations

import base64
from pathlib import Path

STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;}table{border-"
    "collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
    "img{max-width:100%}"
)


def report_html(markdown_text: str, figure_dir: Path) -> str:
    """A plain, self-contained page: the markdown rendered to HTML, figures inlined."""
    import markdown  # the Markdown package (absolute import), not benrl.report.markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])
    for png in sorted(figure_dir.glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        body = body.replace(f'src="{png.name}"', f'src="data:image/png;base64,{data}"')
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>benrl report</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )

"""report.html: the Markdown report as one self-contained page, every image embedded.

Only the Markdown the report writes is understood: headings, paragraphs, pipe tables, images
(`![alt](file.png)`, read from the report's folder and embedded as base64), **bold** and `code`.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}th{background:#f3f3f3}"
    "img{max-width:100%;height:auto;display:block;margin:1em 0}code{background:#f3f3f3;padding:0 .2em}"
    "td strong{white-space:nowrap}"
)
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")


def inline(text: str) -> str:
    """Returns escaped text with **bold** and `code` turned into HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def image_tag(alt: str, name: str, folder: Path) -> str:
    """Returns an <img> tag holding the PNG `folder / name` inline (base64), so the page stands alone."""
    data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(lines: list[str], folder: Path, title: str) -> str:
    """Returns the page for the report's Markdown lines; images are read from `folder`."""
    body: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
            i += 1
        elif IMAGE.fullmatch(line.strip()):
            alt, name = IMAGE.fullmatch(line.strip()).groups()
            body.append(image_tag(alt, name, folder))
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            head = "".join(f"<th>{inline(c)}</th>" for c in _cells(block[0]))
            rows = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in block[2:])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            block = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "![")):
                block.append(lines[i])
                i += 1
            body.append(f"<p>{inline(' '.join(block))}</p>")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )

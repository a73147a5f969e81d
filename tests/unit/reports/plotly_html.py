"""Reads back what a report's HTML hands to plotly.js: every Plotly.newPlot(div, data, layout)."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import numpy as np

NEW_PLOT = "Plotly.newPlot("


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data):
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = None


def scripts(page: str) -> list[tuple[dict[str, str | None], str]]:
    parser = _Scripts()
    parser.feed(page)
    parser.close()
    return parser.scripts


def plots(page: str) -> dict[str, tuple[list[dict], dict]]:
    """div id -> (traces, layout) of every Plotly.newPlot call in the page's scripts."""
    decoder = json.JSONDecoder()
    found = {}
    for _, text in scripts(page):
        at = text.find(NEW_PLOT)
        if at < 0:
            continue
        rest = text[at + len(NEW_PLOT) :]
        values = []
        for _ in range(3):
            rest = rest.lstrip().lstrip(",").lstrip()
            value, end = decoder.raw_decode(rest)
            values.append(value)
            rest = rest[end:]
        div, traces, layout = values
        found[div] = (traces, layout)
    return found


def array(value) -> np.ndarray:
    """A trace array as plotly sent it: a list, or a base64 typed array {dtype, bdata}."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.array([np.nan if v is None else v for v in value], dtype=float)

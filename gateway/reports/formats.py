"""The formats a report is written in, by name."""

from __future__ import annotations

from collections.abc import Callable

from gateway.reports import render_html, render_json, render_text
from gateway.reports.model import Report

RENDERERS: dict[str, Callable[[Report], str]] = {
    "text": render_text.render,
    "json": render_json.render,
    "html": render_html.render,
}
MEDIA_TYPES = {"text": "text/plain", "json": "application/json", "html": "text/html"}

"""A report as JSON: every row, for scripts and other tools."""

from __future__ import annotations

import json

from gateway.reports.model import Report


def render(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2, sort_keys=False) + "\n"

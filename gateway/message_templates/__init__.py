"""Admin-managed message templates (docs/templates.md), rendered in a Jinja2 sandbox.

A template file (`file.py`: strict YAML, checked and compiled when added) holds
a subject, a text and/or html body and typed variables (`values.py`), some
declared PHI. `render.py` turns a sender's values into a `Rendered` message
(pure); its `declared_phi` goes on the intake's Submission, so the policy sees
PHI whatever the detectors find. `sandbox.py` is the environment everything is
compiled and rendered in; `store.py` keeps templates in the database.
"""

from gateway.message_templates.file import TemplateFileError, parse
from gateway.message_templates.render import (
    Rendered,
    Template,
    TemplateError,
    render,
    values_from_text,
)

__all__ = [
    "Rendered",
    "Template",
    "TemplateError",
    "TemplateFileError",
    "parse",
    "render",
    "values_from_text",
]

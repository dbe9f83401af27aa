"""Message inspection: what the message holds, reported as `Findings` (never values)."""

from gateway.inspect.findings import PHI_TYPES, Findings
from gateway.inspect.standin import inspect_message

__all__ = ["PHI_TYPES", "Findings", "inspect_message"]

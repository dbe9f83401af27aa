"""Message inspection: what the message holds, reported as `Findings` (never values).

`gateway.inspect.extract` turns a message into text by place and clinical
payloads; `gateway.inspect.detect` finds PHI in them and applies the PHI
rule; `gateway.inspect.inspector` runs both, heavy attachments in workers.
"""

from __future__ import annotations

import atexit
from email.message import Message

from gateway.config import InspectionConfig
from gateway.inspect.findings import PHI_TYPES, Findings
from gateway.inspect.inspector import Inspector

__all__ = ["PHI_TYPES", "Findings", "Inspector", "inspect_message"]

_DEFAULT = InspectionConfig()
_shared: Inspector | None = None


def inspect_message(message: Message, config: InspectionConfig | None = None) -> Findings:
    """Blocking inspection, as the server does it, for tools and tests."""
    global _shared
    if config is not None and config != _DEFAULT:
        inspector = Inspector(config)
        try:
            return inspector.inspect(message)
        finally:
            inspector.close()
    if _shared is None:
        _shared = Inspector(_DEFAULT)
        atexit.register(_shared.close)
    return _shared.inspect(message)

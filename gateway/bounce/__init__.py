"""Bounces: content-free delivery status notifications, queued for the sender.

Its own stage, built once and handed to intake (recipients the policy refused
while others were accepted) and to delivery (bounces and expiry).
"""

from gateway.bounce.dsn import FailedRecipient, build_dsn, is_null_sender
from gateway.bounce.maker import BounceMaker, queue_dsn

__all__ = ["BounceMaker", "FailedRecipient", "build_dsn", "is_null_sender", "queue_dsn"]

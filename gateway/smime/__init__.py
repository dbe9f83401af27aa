"""S/MIME: encrypting messages to recipients' certificates, optionally signed first."""

from gateway.smime.envelope import EncryptedMessage, SmimeEncryptor
from gateway.smime.errors import SmimeSetupError

__all__ = ["EncryptedMessage", "SmimeEncryptor", "SmimeSetupError"]

"""Recipient certificates for S/MIME: the store and its rules of usability."""

from gateway.smime.certs.store import CertEntry, CertStore, CertStoreError, RecipientCertificate

__all__ = ["CertEntry", "CertStore", "CertStoreError", "RecipientCertificate"]

"""Recipient certificates for S/MIME: the store, its rules of usability, and `phigate certs`."""

from gateway.certs.store import CertEntry, CertStore, CertStoreError, RecipientCertificate

__all__ = ["CertEntry", "CertStore", "CertStoreError", "RecipientCertificate"]

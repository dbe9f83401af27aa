"""The archive: a sealed copy of each accepted message, kept and destroyed by schedule.

Copies are sealed under the archive's own master keys, apart from the
queue's, with the metadata needed to find them (never content in clear).
Retention rules say how long each is kept; legal holds stop destruction;
destruction is crypto-shredding with a record of each batch; retrieval is
by the auditor role with a stated reason, and every access is audited.
"""

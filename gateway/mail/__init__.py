"""Mail vocabulary every stage shares: addresses, header fields, parsed messages, server TLS.

The bottom layer: it imports no stage (listener, intake, store, delivery), so any of
them may import it.
"""

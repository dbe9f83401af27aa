"""DKIM: signing keys by domain and selector (`keys`), signing (`sign`), `phigate dkim` (`cli`)."""

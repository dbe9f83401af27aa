"""DKIM: signing keys by domain and selector (`keys`) and signing (`sign`)."""

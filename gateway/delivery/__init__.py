"""Outbound delivery: MX routing and delivery status notifications."""

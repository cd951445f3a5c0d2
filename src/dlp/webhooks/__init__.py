"""Signed webhooks for training jobs: an SSRF guard, HMAC signing and durable delivery.

Import the modules themselves (``dlp.webhooks.ssrf``, ``dlp.webhooks.delivery``):
this package re-exports nothing, so that ``dlp.training`` can import from it
without an import cycle (``delivery`` reads jobs through ``dlp.training``).
"""

"""Shared organizations, invitations to them, and their quotas."""

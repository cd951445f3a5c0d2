"""Identity: organizations, users, roles, tokens and API keys."""

"""Who is calling: API keys now, OIDC bearer tokens beside them."""

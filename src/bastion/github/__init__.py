"""GitHub: credentials (GitHub App installation tokens, PATs), webhooks."""

"""The repository data plane: where bytes come from (local mirrors today, GitHub's REST API for Lambda)."""

"""The state store: API keys and the repository registry (SQLite by default, PostgreSQL at scale)."""

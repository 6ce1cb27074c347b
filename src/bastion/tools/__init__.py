"""The MCP tools: each validates its input, asks policy, reads through the backend, guards and audits."""

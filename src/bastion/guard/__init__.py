"""What leaves the server: size budgets, binary detection (and, later, secret redaction)."""

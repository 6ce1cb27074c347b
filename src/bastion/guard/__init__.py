"""What leaves the server: size budgets, binary detection, and credentials found and masked (docs/content-guard.md)."""

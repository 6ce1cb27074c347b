"""mcp-bastion: a governed MCP front door to a company's source code."""

__version__ = "0.1.0"

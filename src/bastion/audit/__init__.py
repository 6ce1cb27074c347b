"""Every call and every denial, recorded without blocking the request path."""

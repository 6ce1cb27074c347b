"""Real local stand-ins the tests start themselves (git smart-HTTP remote, servers on 127.0.0.1)."""

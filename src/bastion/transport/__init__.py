"""The HTTP edge: request ids, client addresses, body limits, authentication, health endpoints."""

"""streamuq HTTP/WebSocket service."""

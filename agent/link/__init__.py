"""The link layer: the WebSocket transport and the connection supervisor that connects, serves and
reconnects."""

"""Klarna's credentials API as this tool speaks it: TLS, the connection pool, the response models,
Klarna's error model, the handshake probe and the client."""

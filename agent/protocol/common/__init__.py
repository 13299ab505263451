"""What every OCPP version shares: the adapter base, RPC fixes over the `ocpp` library, the durable
outbox, the schema fast path, key case conversion, the message catalog, and the handlers that are
the same in every version."""

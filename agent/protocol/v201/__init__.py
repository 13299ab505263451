"""OCPP 2.0.1: the adapter and its per-block handler mixins (same file names as `protocol/v16`)."""

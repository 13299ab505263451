"""OCPP 1.6J: the adapter and its per-block handler mixins (same file names as `protocol/v201`)."""

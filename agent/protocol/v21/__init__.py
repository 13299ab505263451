"""OCPP 2.1: the 2.0.1 adapter extended by subclassing, with only what 2.1 changes (same file names as `protocol/v201`)."""

"""The process's runtime services: state store, message log, settings, clock, lock file, sd_notify,
liveness and logging set-up. Nothing here knows OCPP."""

"""Station management: firmware, log upload, certificates, security events, network profiles and the
1.6 configuration keys. Version-neutral; no `ocpp` import."""

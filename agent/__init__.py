"""ocpp-agent: the Charging Station side of OCPP 1.6J and 2.0.1 for Linux EV chargers."""

__version__ = "0.1.0"

"""The safety-critical charging wing: the EVSE state machines and everything a charging session needs
(transactions, authorization, reservations, metering, charging limits, smart charging).

It imports nothing from the management or device-model wings, no `ocpp` and no `agent.protocol`."""

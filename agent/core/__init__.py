"""The version-neutral charging core: EVSE state machines, transactions, authorization,
metering and station settings. It imports no `ocpp`: both protocol adapters consume it."""

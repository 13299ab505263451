"""The exception tree of ocpp-agent: one root, a base per subsystem.

Leaves that have a natural builtin counterpart inherit it too, so callers may
catch either (``except TimeoutError`` still works for ``CallTimeout``).
"""


from hal.errors import HalError


class AgentError(Exception):
    """Root of every error raised by the agent (the HAL's own root is ``hal.errors.HalError``)."""


#: What a catch-all of the process layer catches: the agent's errors and the hardware's. The HAL is
#: the bottom layer and imports nothing from ``agent``, so its root is not an AgentError.
STATION_ERRORS = (AgentError, HalError)


class ConfigError(AgentError):
    """The configuration is invalid; ``errors`` lists every problem by key path."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class StoreError(AgentError):
    """The SQLite state store cannot be opened or written."""


class TransportError(AgentError, ConnectionError):
    """Base of WebSocket transport failures."""


class ConnectFailed(TransportError):
    """A connection attempt to the CSMS failed; the message says why.

    ``security_event`` names the OCPP security event the failure is, if any
    (InvalidCsmsCertificate, FailedToAuthenticateAtCsms).
    """

    def __init__(self, message: str, *, security_event: str | None = None):
        super().__init__(message)
        self.security_event = security_event


class ConnectionLost(TransportError):
    """The open connection to the CSMS ended (closed, reset or half-open)."""


class ProtocolFailure(AgentError):
    """Base of OCPP exchange failures that are not a CALLERROR from the peer."""


class CallAborted(ProtocolFailure, ConnectionError):
    """A CALL was pending when the connection dropped; its outcome is unknown."""


class CallTimeout(ProtocolFailure, TimeoutError):
    """No CALLRESULT or CALLERROR arrived within the response timeout."""


class CallErrorReceived(ProtocolFailure):
    """The CSMS answered our CALL with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str, details: object):
        self.action, self.code, self.description, self.details = action, code, description, details
        super().__init__(f"{action}: CSMS answered {code}: {description}")


class InvalidResponse(ProtocolFailure, ValueError):
    """The CSMS's CALLRESULT does not match the action's schema."""

"""OCPP 2.1 block O over the 2.0.1 display handlers: the message formats and states 2.1 adds.

A QRCODE message needs a display that can draw one (ours are text): NotSupportedMessageFormat,
as for HTML or URI. The states Suspended and Discharging are not states this station shows
messages in: Rejected with the reason. ``messageExtra`` (the same message in up to four more
languages or formats) is Rejected with the reason too: the displays this station drives show one
text, in the message's own language, and accepting the message would drop what the CSMS asked to show.
"""

from __future__ import annotations

import logging

from ocpp.routing import on
from ocpp.v21 import call_result
from ocpp.v21.enums import Action

from agent.protocol.v201.display import DisplayHandlers201

log = logging.getLogger("agent.ocpp21")

#: MessageStateEnumType values 2.1 adds: a transaction suspended, an EV discharging (V2X).
#: Why a message with ``messageExtra`` is refused (SetDisplayMessage statusInfo).
NO_MESSAGE_EXTRA = "messageExtra: this display shows one text, in the message's own language"
_NEW_STATES = {"Suspended": "messages for a suspended transaction are not supported",
               "Discharging": "this station does no bidirectional (V2X) charging"}


class DisplayHandlers21(DisplayHandlers201):
    """Mixed into the 2.1 adapter before the 2.0.1 handlers it refines."""

    @on(Action.set_display_message)
    def on_set_display_message(self, message: dict, **_):
        """SetDisplayMessage: the 2.0.1 handling, after refusing what 2.1 adds and the display cannot do."""
        if (message.get("message") or {}).get("format") == "QRCODE":
            return call_result.SetDisplayMessage(status="NotSupportedMessageFormat")
        if message.get("message_extra"):
            log.warning("SetDisplayMessage %s refused: %s", message.get("id"), NO_MESSAGE_EXTRA)
            return call_result.SetDisplayMessage(status="Rejected", status_info={
                "reason_code": "UnsupportedParam", "additional_info": NO_MESSAGE_EXTRA})
        problem = _NEW_STATES.get(message.get("state"))
        if problem is not None:
            log.warning("SetDisplayMessage %s refused: state %s: %s", message.get("id"), message["state"], problem)
            return call_result.SetDisplayMessage(status="Rejected", status_info={
                "reason_code": "UnsupportedParam", "additional_info": f"state {message['state']}: {problem}"})
        return super().on_set_display_message(message=message)

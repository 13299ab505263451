"""OCPP 2.1 adapter: the 2.0.1 adapter, subclassed, with only what 2.1 changes.

2.1 (OCA, January 2025) extends 2.0.1: the same use cases with a few new fields, and new
ones. This adapter speaks subprotocol ``ocpp2.1``, checks every payload against the 2.1
schemas (``ocpp/v21/schemas``, both ways), types the CSMS's answers with ``ocpp.v21``, knows
2.1's two unanswered frames (``frames``) and refines the 2.0.1 handlers where 2.1 widens a
message (``smart_charging``, ``monitoring``, ``display``, ``network``, ``diagnostics``, ``codec``).

A 2.1 action this station does not offer has no handler: the base answers it NotSupported
(an action 2.1 does not know, NotImplemented), and ``not_offered`` says why for the PICS;
nothing is answered Accepted that is not done.
"""

from __future__ import annotations

import logging

from ocpp.v21 import call, call_result
from ocpp.v21.enums import Action

from agent.protocol.v201.adapter import Ocpp201Adapter
from agent.protocol.v21.codec import TransactionCodec21
from agent.protocol.v21.diagnostics import DiagnosticsHandlers21
from agent.protocol.v21.display import DisplayHandlers21
from agent.protocol.v21.dynamic_profiles import DYNAMIC_SENDS, DynamicProfileHandlers21
from agent.protocol.v21.event_streams import STREAM_SENDS, EventStreamHandlers21
from agent.protocol.v21.frames import Frames21
from agent.protocol.v21.monitoring import MonitoringHandlers21
from agent.protocol.v21.network import NetworkHandlers21
from agent.protocol.v21.priority_charging import PRIORITY_SENDS, PriorityChargingHandlers21
from agent.protocol.v21.reset import ResetHandlers21
from agent.protocol.v21.smart_charging import NO_15118, NO_V2X, SmartChargingHandlers21
from agent.protocol.v21.tariffs import TariffHandlers21, tariff_book
from agent.protocol.v21.transaction_tariffs import TransactionTariffHandlers21

log = logging.getLogger("agent.ocpp21")

#: 2.1's SEND (never answered): the one action ocpp.v21's Action enum lacks.
NOTIFY_PERIODIC_EVENT_STREAM = "NotifyPeriodicEventStream"

_NO_DER = "needs DER control of an inverter, which an AC charger has not"
_NO_PAYMENT = "needs a payment terminal, which this station has not"


class Ocpp21Adapter(Frames21, DiagnosticsHandlers21, DisplayHandlers21, EventStreamHandlers21,
                    DynamicProfileHandlers21, PriorityChargingHandlers21, MonitoringHandlers21, NetworkHandlers21,
                    ResetHandlers21, SmartChargingHandlers21, TariffHandlers21, TransactionTariffHandlers21, Ocpp201Adapter):
    """The Charging Station side of OCPP 2.1."""

    ocpp_version = "2.1"
    subprotocol = "ocpp2.1"
    known_actions = frozenset(a.value for a in Action) | {NOTIFY_PERIODIC_EVENT_STREAM}
    # The library's ChargePoint attributes: answers are typed with 2.1's call_result.
    _call = call
    _call_result = call_result
    _ocpp_version = "2.1"

    #: Station-initiated messages this adapter sends (read by `ocpp-agent pics`): 2.0.1's and the streams'.
    sends = Ocpp201Adapter.sends | STREAM_SENDS | DYNAMIC_SENDS | PRIORITY_SENDS

    #: Messages this station does not offer, and why (read by `ocpp-agent pics`).
    not_offered = {
        **Ocpp201Adapter.not_offered,
        "GetCertificateChainStatus": NO_15118,
        # By design: what an AC charger without these parts cannot do.
        "NotifyAllowedEnergyTransfer": NO_V2X, "AFRRSignal": NO_V2X,
        "SetDERControl": _NO_DER, "GetDERControl": _NO_DER, "ClearDERControl": _NO_DER,
        "ReportDERControl": _NO_DER, "NotifyDERAlarm": _NO_DER, "NotifyDERStartStop": _NO_DER,
        "RequestBatterySwap": "a battery swap station's", "BatterySwap": "a battery swap station's",
        "NotifySettlement": _NO_PAYMENT, "VatNumberValidation": _NO_PAYMENT,
        "NotifyWebPaymentStarted": "ad hoc payment by QR code needs a display that can show one",
    }

    def transaction_codec(self, core) -> TransactionCodec21:
        """2.1 TransactionEvent (2.0.1's and the operation mode) and SecurityEventNotification."""
        codec = TransactionCodec21(journal=core.journal, authorizer=core.authorizer, station=core.station,
                                   display=core.display_messages)
        codec.tariffs = tariff_book(core)  # prices the transactions (tariffId, costDetails)
        return codec

"""OCPP 2.0.1 block B, network connection profiles: SetNetworkProfile over ``agent.core.management.network``."""

from __future__ import annotations

import logging

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from agent.core.management.network import ConnectionProfile, ProfileRefused

log = logging.getLogger("agent.ocpp201")


class NetworkHandlers201:
    """Mixed into the 2.0.1 adapter: the profiles are ``self.core.network`` (absent: NotSupported)."""

    @on(Action.set_network_profile)
    def on_set_network_profile(self, configuration_slot: int, connection_data: dict, **_):
        """SetNetworkProfile: store a slot the station can use; Rejected (with the reason) otherwise.

        This station speaks OCPP 2.0.1 over JSON and leaves the link itself (interface,
        APN, VPN) to the operating system, so a profile asking for anything else is refused
        rather than stored and then silently not honoured.
        """
        network = self.core.network if self.core is not None else None
        if network is None:
            raise NotSupportedError(description="network profiles are not configured on this station")
        problem = self.network_profile_problem(connection_data)
        if problem is None:
            profile = ConnectionProfile(slot=configuration_slot, url=connection_data["ocpp_csms_url"],
                                        security_profile=connection_data["security_profile"],
                                        message_timeout_s=float(connection_data["message_timeout"]))
            try:
                network.set_slot(configuration_slot, profile)
            except ProfileRefused as exc:
                problem = str(exc)
        if problem is not None:
            log.warning("SetNetworkProfile for slot %d refused: %s", configuration_slot, problem)
            return call_result.SetNetworkProfile(
                status="Rejected", status_info={"reason_code": "InvalidNetworkConf", "additional_info": problem[:512]})
        return call_result.SetNetworkProfile(status="Accepted")

    def network_profile_problem(self, data: dict) -> str | None:
        """Why this station cannot use a NetworkConnectionProfile (a hook: 2.1 words the version differently)."""
        return unsupported_profile(data)


def unsupported_profile(data: dict, *, version_checked: bool = False) -> str | None:
    """Why a NetworkConnectionProfile asks for something this station cannot do, or None (the OCPP version
    is 2.0.1's unless ``version_checked``)."""
    if not version_checked and data.get("ocpp_version") != "OCPP20":
        return f"this station speaks OCPP 2.0.1 only, not {data.get('ocpp_version')}"
    if data.get("ocpp_transport") != "JSON":
        return "only the JSON transport is supported"
    if data.get("vpn") or data.get("apn"):
        return "the network link (APN, VPN) is managed by the operating system, not by OCPP"
    if data.get("message_timeout", 0) <= 0:
        return "messageTimeout must be positive"
    return None

"""OCPP 1.6 Smart Charging profile: SetChargingProfile, ClearChargingProfile, GetCompositeSchedule.

Only 1.6's words live here; the conversion, the acceptance flow and the composite
schedule are shared with 2.0.1 (``agent.protocol.common.smart_charging``).
"""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from agent.core.charging.smart_charging import ChargingProfile
from agent.protocol.common.smart_charging import SmartChargingBase, profile_from_fields


def profile_from_16(data: dict, *, evse_id: int, transaction_ref: str | None) -> ChargingProfile:
    """A 1.6 csChargingProfiles (snake_case dict from the library) as the core's ChargingProfile."""
    # 1.6's purposes are the core's own words, and a profile carries exactly one schedule.
    return profile_from_fields(data, profile_id=data["charging_profile_id"], purpose=data["charging_profile_purpose"],
                               schedule=data["charging_schedule"], evse_id=evse_id, transaction_ref=transaction_ref)


class SmartChargingHandlers16(SmartChargingBase):
    """Mixed into the 1.6 adapter."""

    def profile_from_message(self, data: dict, *, evse_id: int, transaction_ref: str | None) -> ChargingProfile:
        """A 1.6 csChargingProfiles as the core's profile."""
        return profile_from_16(data, evse_id=evse_id, transaction_ref=transaction_ref)

    def profile_transaction(self, evse_id: int, data: dict) -> str | None:
        """A 1.6 TxProfile names its transaction by the integer id the Central System gave it."""
        transaction_id = data.get("transaction_id")
        return self.core.station.transaction_for_profile(
            evse_id, remote_id=str(transaction_id) if transaction_id is not None else None)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **_):
        """SetChargingProfile: validated, stored, applied to the offered current at once."""
        return call_result.SetChargingProfile(status=self.accept_profile(cs_charging_profiles, evse_id=connector_id))

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                  charging_profile_purpose: str | None = None, stack_level: int | None = None, **_):
        """ClearChargingProfile by id or by filter: Accepted if anything matched, else Unknown."""
        cleared = self.core.station.clear_profiles(profile_id=id, evse_id=connector_id,
                                                   purpose=charging_profile_purpose, stack_level=stack_level)
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None,
                                  **_):
        """GetCompositeSchedule from now over ``duration`` seconds."""
        reply = self.composite_reply(connector_id, duration=duration, charging_rate_unit=charging_rate_unit)
        if reply is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=reply.start,
            charging_schedule={"duration": duration, "start_schedule": reply.start,
                               "charging_rate_unit": reply.rate_unit, "charging_schedule_period": reply.periods})

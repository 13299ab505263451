"""The composition root's device-model wing: the 2.0.1/2.1 device model with the station's live facts,
monitoring wired to every station change and meter poll, and customer information.

Split out of ``agent.app`` (which keeps the order of start and stop); each function takes the
:class:`agent.app.Agent` whose parts it wires, and behaves as the methods it came from did.
"""

from __future__ import annotations


def build_device_model(agent, display_messages):
    """The 2.0.1 device model over the same settings, with the station's live facts."""
    from agent.core.device_model import DeviceModel, max_power_W, station_suppliers, variable_key
    from agent.core.device_model.station import meter_suppliers
    from agent.core.device_model.monitoring import monitoring_variables

    config = agent.config
    computed = {
        **station_suppliers(agent.station),
        "ClockCtrlr.DateTime": agent.clock.now_iso,
        "SecurityCtrlr.Identity": lambda: config.station.id,
        "OCPPCommCtrlr.MessageTimeout[Default]": lambda: int(config.csms.response_timeout_s),
        "AuthCtrlr.Enabled": lambda: not config.station.free_vend,
        "ChargingStation.SupplyPhases": lambda: max(e.phases for e in config.evse),
        **display_messages.variables(),
        **monitoring_variables(agent.store),
        **meter_suppliers({i: hw.meter for i, hw in agent.hal.evses.items()},
                          phases={e.id: e.phases for e in config.evse}),
    }
    for evse in config.evse:
        computed[variable_key("EVSE", "SupplyPhases", evse_id=evse.id)] = lambda p=evse.phases: p
    return DeviceModel(agent.settings, evse_ids=[e.id for e in config.evse], computed=computed,
                       evse_max_power_W={e.id: max_power_W(e.max_current_A, e.phases) for e in config.evse})


def wire_monitoring_and_customer_info(agent, local_list) -> None:
    """2.0.1 monitoring, told of every station change and every poll of a meter (it never polls), and
    customer information over the cache, the local list and the message log."""
    from agent.core.charging.auth import AuthorizationCache
    from agent.core.device_model.customer_info import CustomerInformation
    from agent.core.device_model.monitoring import Monitoring, preconfigured_monitors

    core = agent.core
    core.customer_info = CustomerInformation(cache=AuthorizationCache(agent.store, clock=agent.clock),
                                             local_list=local_list, message_log=agent.message_log)
    if core.device_model is None:
        return  # 1.6 has no monitoring
    monitoring = core.monitoring = Monitoring(
        agent.store, device_model=core.device_model, settings=agent.settings, clock=agent.clock,
        transaction_of=agent.station.transaction_ref,
        presets=preconfigured_monitors({e.id: e.phases for e in agent.config.evse}))
    agent.station.add_listener(monitoring.check)
    for hw in agent.hal.evses.values():  # live values: evaluated on every poll, not only on samples
        hw.meter.add_listener(lambda evse_id, reading: monitoring.check(evse_id=evse_id))

"""The codec parts both versions share: a MeterValue element's shape and reading an expiry dateTime."""

from __future__ import annotations

from datetime import datetime, timezone

from agent.core.charging.model import MeterSample, Sample
from agent.protocol.common.codec import expiry_time, meter_value
from agent.protocol.v16 import codec as codec16
from agent.protocol.v201 import codec as codec201

SAMPLE = MeterSample(timestamp=datetime(2030, 6, 1, 12, 0, 0, 250000, tzinfo=timezone.utc).timestamp(), values=(
    Sample("Energy.Active.Import.Register", 1234567.5, "Wh"),
    Sample("Current.Import", 15.9, "A", phase="L2", context="Trigger"),
))


def test_codec_meter_value_words_each_value_and_adds_the_phase_only_where_named():
    element = meter_value(SAMPLE, sampled_value=lambda v: {"measurand": v.measurand})
    assert element == {"timestamp": "2030-06-01T12:00:00.250Z", "sampled_value": [
        {"measurand": "Energy.Active.Import.Register"}, {"measurand": "Current.Import", "phase": "L2"}]}


def test_codec_meter_value_in_each_version_keeps_its_own_words():
    values16 = codec16.meter_value(SAMPLE)["sampled_value"]
    values201 = codec201.meter_value(SAMPLE)["sampled_value"]
    assert values16[0] == {"value": "1234567.5", "context": "Sample.Periodic", "measurand":
                           "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"}
    assert values201[1] == {"value": 15.9, "context": "Trigger", "measurand": "Current.Import", "location": "Outlet",
                            "unit_of_measure": {"unit": "A"}, "phase": "L2"}


def test_codec_expiry_time_reads_utc_and_takes_an_unreadable_one_as_none():
    at_utc = datetime(2030, 6, 1, 12, tzinfo=timezone.utc).timestamp()
    assert expiry_time("2030-06-01T12:00:00") == at_utc
    assert expiry_time("2030-06-01T14:00:00+02:00") == at_utc
    assert expiry_time("next tuesday") is None
    assert expiry_time(None) is None
    assert codec16.id_token_info({"status": "Accepted", "expiry_date": "garbage"}).expiry is None

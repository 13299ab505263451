"""Token reader contract: UID normalisation, repeat suppression, reader-offline."""

import pytest

from hal.events import TokenPresented
from hal.mock.devices import MockTokenReader
from hal.roles import normalise_uid
from tests.hal.helpers import faults_of


@pytest.mark.parametrize("raw, token", [
    ("04a1b2c3", "04A1B2C3"),
    ("04:a1:b2:c3", "04A1B2C3"),
    ("04-A1-B2-C3", "04A1B2C3"),
    (" 04 a1 b2 c3\n", "04A1B2C3"),
    ("0x04a1b2c3", "04A1B2C3"),
    ("04.a1_b2", "04A1B2"),
    ("0123456789ABCDEF0123", "0123456789ABCDEF0123"),
    ("user-1", "USER-1"),
    ("HELLO", "HELLO"),
])
def test_token_reader_normalises_uid(raw, token):
    assert normalise_uid(raw) == token


@pytest.mark.parametrize("raw", ["", " : ", "04 A1 G2", "hello!", "0123456789ABCDEF01234", "ABCDEFGHIJKLMNOPQRSTU"])
def test_token_reader_rejects_bad_uid(raw):
    with pytest.raises(ValueError):
        normalise_uid(raw)


def reader(events, clock, **options):
    return MockTokenReader(emit=events.append, clock=clock, **options)


def test_token_reader_emits_normalised_token(events, clock):
    assert reader(events, clock).hold("04:a1:b2:c3", 2) is True
    assert events == [TokenPresented("04A1B2C3", 2)]


def test_token_reader_suppresses_card_held_within_interval(events, clock):
    device = reader(events, clock, repeat_interval_s=2.0)
    assert device.hold("04A1") is True
    clock.advance(1.0)
    assert device.hold("04:a1") is False  # same card, other spelling
    clock.advance(1.5)
    assert device.hold("04A1") is False  # still held: 1.5 s since the last sighting
    clock.advance(2.0)
    assert device.hold("04A1") is True  # gone for 2 s: a new presentation
    assert events == [TokenPresented("04A1", None)] * 2


def test_token_reader_other_card_or_reader_not_suppressed(events, clock):
    device = reader(events, clock)
    device.hold("04A1")
    assert device.hold("04A2") is True
    assert device.hold("04A2", 1) is True  # another EVSE's reader
    assert len(events) == 3


def test_token_reader_tap_is_presented_then_removed(events, clock):
    device = reader(events, clock)
    assert device.tap("04A1") is True
    assert device.tap("04A1") is True  # taken away in between: counts again
    assert len(events) == 2


def test_token_reader_offline_fault_and_no_delivery(events, clock):
    device = reader(events, clock)
    device.set_offline(True)
    assert not device.online
    assert device.tap("04A1") is False
    with pytest.raises(ValueError):
        device.tap("not hex")
    device.set_offline(False)
    assert device.tap("04A1") is True
    assert faults_of(events) == [("raised", None, "reader-offline"),
                                 ("cleared", None, "reader-offline")]
    assert events[0].stops_charging is False
    assert events[-1] == TokenPresented("04A1", None)


def test_token_reader_repr_shows_state(events, clock):
    device = reader(events, clock)
    device.tap("04A1")
    assert repr(device) == "<MockTokenReader online presented=1>"


async def test_token_reader_mock_hal_tap_targets_evse(hal, events):
    assert hal.tap("04a1", evse=2) is True
    assert events == [TokenPresented("04A1", 2)]

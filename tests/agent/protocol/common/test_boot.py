"""Why the process started, and when a connection resumes instead of booting (agent.protocol.common.boot)."""

import pytest

from agent.errors import StoreError
from agent.protocol.common.boot import (
    LAST_RUN_KEY, NEXT_REASON_KEY, BootRecord, kernel_boot_id, start_reason,
)
from tests.harness import fakes

URL = "ws://csms.example/ocpp/CP1"


class MemoryStore(fakes.MemoryStore):
    """The state-store methods the boot record uses."""

    def delete(self, key):
        self.pop(key, None)


@pytest.mark.parametrize("next_reason, last_run, kernel, reason", [
    (None, None, "k1", "PowerUp"),  # the first start ever
    (None, {"kernel_boot": "k1", "stopped": True}, "k1", "LocalReset"),  # SIGTERM, a restart
    (None, {"kernel_boot": "k0", "stopped": True}, "k1", "LocalReset"),  # stopped, then the board rebooted
    (None, {"kernel_boot": "k1", "stopped": False}, "k1", "Watchdog"),  # killed while the board ran on
    (None, {"kernel_boot": "k0", "stopped": False}, "k1", "PowerUp"),  # the board lost power
    (None, {"kernel_boot": None, "stopped": False}, None, "PowerUp"),  # no boot id: cannot tell, PowerUp
    ("RemoteReset", {"kernel_boot": "k1", "stopped": True}, "k1", "RemoteReset"),  # a reason set wins
    ("FirmwareUpdate", {"kernel_boot": "k0", "stopped": False}, "k1", "FirmwareUpdate"),
])
def test_boot_start_reason(next_reason, last_run, kernel, reason):
    assert start_reason(next_reason, last_run, kernel) == reason


def test_boot_record_tells_each_start_how_the_last_one_ended():
    store = MemoryStore()
    assert BootRecord(store, kernel_boot="k1").reason == "PowerUp"
    assert BootRecord(store, kernel_boot="k1").reason == "Watchdog"  # the first never stopped on purpose
    BootRecord(store, kernel_boot="k1").controlled_stop()
    assert BootRecord(store, kernel_boot="k1").reason == "LocalReset"
    assert BootRecord(store, kernel_boot="k2").reason == "PowerUp"  # the last run was cut with the board's power


def test_boot_record_next_reason_holds_until_a_boot_carrying_it_is_accepted():
    store = MemoryStore()
    first = BootRecord(store, kernel_boot="k1")
    first.set_next_reason("RemoteReset")
    first.controlled_stop()
    second = BootRecord(store, kernel_boot="k1")
    assert second.reason == "RemoteReset"
    third = BootRecord(store, kernel_boot="k1")  # restarted before its boot was accepted: still that reason
    assert third.reason_now() == "RemoteReset"
    third.accepted(URL)
    assert store.get(NEXT_REASON_KEY) is None
    assert third.reason_now() == "RemoteReset"  # a later boot of the same process says the same
    store[NEXT_REASON_KEY] = "FirmwareUpdate"  # found at boot: an install restarted the station
    assert third.reason_now() == "FirmwareUpdate"


def test_boot_record_resumes_only_on_the_endpoint_that_accepted_the_boot():
    record = BootRecord(MemoryStore(), kernel_boot=None)
    assert not record.may_resume(URL)  # nothing accepted yet
    record.accepted(URL)
    assert record.may_resume(URL)
    assert not record.may_resume("ws://other.example/ocpp/CP1")  # another CSMS has not heard the boot
    assert not record.may_resume(None)
    record.booting()  # a connection boots (Pending, Rejected, unanswered...): the next one boots again
    assert not record.may_resume(URL)


def test_boot_record_survives_a_failing_store():
    class BrokenStore(MemoryStore):
        def get(self, key, default=None):
            raise StoreError("disk I/O error")

        def put(self, key, value):
            raise StoreError("disk I/O error")

        def delete(self, key):
            raise StoreError("disk I/O error")

    record = BootRecord(BrokenStore(), kernel_boot="k1")
    assert record.reason == "PowerUp"
    record.set_next_reason("RemoteReset")
    record.accepted(URL)
    record.controlled_stop()
    assert record.may_resume(URL)


def test_boot_record_marks_the_run_and_reads_the_kernel_boot_id(tmp_path):
    store = MemoryStore()
    BootRecord(store, kernel_boot="k1")
    assert store[LAST_RUN_KEY] == {"kernel_boot": "k1", "stopped": False}
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("3f1c\n")
    assert kernel_boot_id(boot_id) == "3f1c"
    assert kernel_boot_id(tmp_path / "missing") is None

"""Fixtures for the charging core: one EVSE machine on the mock HAL, with a real store, journal and settings.

``evse_rig`` is an :class:`EvseRig`: an ``EvseMachine`` for EVSE 1 built the way
the station builds it, over the mock HAL's EVSE hardware, a ``StateStore`` and
``TransactionJournal`` on ``tmp_path``, real ``Settings`` and ``Clock``. The
machine is started (status Available) and stopped at teardown. The mock HAL's
events reach the machine as the station would pass them on: a pilot change
becomes a ``Pilot`` input, a fault raised or cleared on EVSE 1 a ``Fault``
input. Everything else a test submits itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent.core.charging.evse import EvseMachine
from agent.core.charging.evse_inputs import Authorize, Evaluate, EvseInput, Fault, Pilot
from agent.core.charging.model import AuthorizationStatus, ConnectorStatus, IdTokenInfo
from agent.core.charging.transactions import Transaction, TransactionJournal
from agent.runtime.clock import Clock
from agent.runtime.settings import Settings
from agent.runtime.store import StateStore
from hal.events import FaultCleared, FaultRaised, PilotChanged
from hal.mock.hardware import MockHal

EVSE = 1
MAX_CURRENT_A = 32.0
ACCEPTED = IdTokenInfo(AuthorizationStatus.ACCEPTED)


@dataclass
class EvseRig:
    """An EVSE machine on the mock HAL, with what it reported (``statuses``, ``transactions``)."""

    machine: EvseMachine
    hal: MockHal
    store: StateStore
    journal: TransactionJournal
    settings: Settings
    statuses: list[tuple[ConnectorStatus, str | None]] = field(default_factory=list)
    transactions: list[Transaction | None] = field(default_factory=list)

    @property
    def evse_id(self) -> int:
        """The id of the EVSE under test."""
        return self.machine.evse_id

    @property
    def max_current_A(self) -> float:
        """The most the EVSE may offer (what it offers with no lower limit)."""
        return self.machine.max_current_A

    @property
    def hw(self):
        """EVSE 1's mock hardware (contactor, lock, meter, pilot)."""
        return self.hal.evse(EVSE)

    @property
    def status(self) -> ConnectorStatus:
        """The status the machine last reported."""
        return self.statuses[-1][0]

    async def inject_fault(self, code: str) -> None:
        """Make fault ``code`` physically present in the mock, and wait until the machine has heard of it."""
        self.hal.inject_fault(EVSE, code)
        await self.settle()

    async def send(self, item: EvseInput):
        """Submit one input and wait for its answer."""
        return await self.machine.submit(item)

    async def settle(self) -> None:
        """Wait until every input queued so far (HAL events included) has been handled."""
        await self.machine.submit(Evaluate())

    async def plug(self) -> None:
        """The cable goes in (pilot B)."""
        self.hal.plug(EVSE)
        await self.settle()

    async def unplug(self) -> None:
        """The cable comes out (pilot A)."""
        self.hal.unplug(EVSE)
        await self.settle()

    async def ev_charge(self, charge: bool = True) -> None:
        """The plugged EV asks for energy (pilot C) or stops asking (B)."""
        self.hal.ev_charge(EVSE, charge)
        await self.settle()

    async def authorize(self, id_token: str = "CARD1", **options) -> bool:
        """An accepted token for this EVSE; True if the machine will use it."""
        return await self.send(Authorize(id_token=id_token, info=options.pop("info", ACCEPTED), **options))

    async def start_charging(self, id_token: str = "CARD1") -> Transaction:
        """Authorize, plug in and let the EV ask for energy: a charging transaction."""
        assert await self.authorize(id_token)
        await self.plug()
        await self.ev_charge()
        assert self.status is ConnectorStatus.CHARGING
        return self.machine.transaction

    def history(self, *devices: str) -> list[tuple[str, object]]:
        """The mock's recorded output changes as (device, value), oldest first; ``devices`` filters by
        the short name ("contactor", "lock", "current_limit_A")."""
        prefix = f"evse{EVSE}."
        entries = [(name.removeprefix(prefix), value) for _, name, value in self.hal.history
                   if name.startswith(prefix)]
        return [entry for entry in entries if not devices or entry[0] in devices]


@pytest.fixture
async def evse_rig(tmp_path):
    """A started EVSE machine on the mock HAL (see the module docstring); stopped at teardown."""
    machine: EvseMachine | None = None

    def emit(event) -> None:
        # What the station does with the HAL's events for this EVSE.
        if machine is None or getattr(event, "evse_id", None) != EVSE:
            return
        if isinstance(event, PilotChanged):
            machine.submit(Pilot(state=event.state))
        elif isinstance(event, (FaultRaised, FaultCleared)):
            machine.submit(Fault(code=event.code, active=isinstance(event, FaultRaised)))

    hal = MockHal(evse_ids=[EVSE], data_dir=tmp_path, emit=emit, max_current_A=MAX_CURRENT_A,
                  feedback_timeout_s=0.05)
    store = StateStore(tmp_path / "state.sqlite")
    # Durability across power loss is not under test here; without the fsyncs the tests stay fast on a busy disk.
    store.connection.execute("PRAGMA synchronous = OFF")
    settings = Settings(store)
    journal = TransactionJournal(store)
    rig_statuses: list = []
    rig_transactions: list = []
    machine = EvseMachine(
        EVSE, hardware=hal.evse(EVSE), journal=journal, settings=settings, clock=Clock(),
        max_current_A=MAX_CURRENT_A, on_status=lambda evse_id, status, error: rig_statuses.append((status, error)),
        on_transaction=lambda evse_id, tx: rig_transactions.append(tx))
    rig = EvseRig(machine, hal, store, journal, settings, rig_statuses, rig_transactions)
    await machine.start()
    try:
        yield rig
    finally:
        await machine.stop()
        store.close()

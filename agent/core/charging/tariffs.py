"""Tariffs and the local cost of a transaction (OCPP 2.1 block I, version-neutral).

A tariff is kept as the CSMS gave it (a TariffType as a snake_case dict: numbers from JSON);
the arithmetic reads every number through ``Decimal(str(x))`` so that money is never a float
here. What the station prices:

* ``energy``: per kWh, with the energy thresholds ``min_energy`` / ``max_energy`` (Wh) as the only
  conditions (tiered prices; the first price whose conditions hold prices each Wh);
* ``charging_time`` and ``idle_time``: per minute, without conditions;
* ``fixed_fee``: once per transaction, without conditions;
* ``min_cost`` / ``max_cost``, and the tax rates of each part (``stack``: a higher stack is taxed on
  the lower stacks' tax as well).

Any other condition makes the tariff be refused (ConditionNotSupported), as do reservation prices
and a tariff valid only from a later time (Rejected): a tariff is never accepted and then priced
otherwise than it says. Money is rounded to cents (half up) per part, and the totals are the sums
of the rounded parts, so that the parts always add up to the total the driver sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
#: The most prices a part of a tariff may list (TooManyElements beyond).
MAX_PRICES = 10
_ENERGY_CONDITIONS = frozenset({"min_energy", "max_energy"})
_PARTS = (("energy", "price_kwh"), ("charging_time", "price_minute"), ("idle_time", "price_minute"),
          ("fixed_fee", "price_fixed"))
_STORE_KEY = "tariffs.default"  # {evse_id (str): TariffType dict}
_BOUND_KEY = "tariffs.tx."  # + transaction ref: the tariff a transaction is priced with


class TariffRefused(Exception):
    """A tariff this station cannot apply as it is written: ``status`` is the TariffSetStatus to answer."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def dec(value: Any) -> Decimal:
    """A JSON number as an exact Decimal (through its shortest text: 0.1 is 0.1, not the float's binary)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def money(value: Decimal) -> Decimal:
    """Rounded to cents, half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def check(tariff: dict, *, now: float | None = None) -> None:
    """Raise TariffRefused unless the station can price ``tariff`` exactly as it says."""
    for name in ("reservation_time", "reservation_fixed"):
        if tariff.get(name):
            raise TariffRefused("Rejected", f"{_camel(name)}: reservations are not priced by this station")
    valid_from = tariff.get("valid_from")
    if valid_from and now is not None and _epoch(valid_from) > now:
        raise TariffRefused("Rejected", "validFrom in the future: a tariff must be valid when it is set")
    for part, _price in _PARTS:
        prices = (tariff.get(part) or {}).get("prices") or []
        if len(prices) > MAX_PRICES:
            raise TariffRefused("TooManyElements", f"{_camel(part)}: at most {MAX_PRICES} prices")
        allowed = _ENERGY_CONDITIONS if part == "energy" else frozenset()
        for price in prices:
            unsupported = sorted(k for k in (price.get("conditions") or {}) if k not in allowed)
            if unsupported:
                raise TariffRefused("ConditionNotSupported", f"{_camel(part)}: condition "
                                                             f"{', '.join(map(_camel, unsupported))} is not supported")


def _camel(name: str) -> str:
    """A snake_case field name as OCPP spells it (start_time_of_day: startTimeOfDay), for the reasons given."""
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _epoch(text: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Usage:
    """What a transaction used: energy in Wh, and whole seconds charging and idle."""

    energy_Wh: Decimal
    charging_s: int
    idle_s: int = 0


@dataclass(frozen=True)
class PartCost:
    """The cost of one part of a tariff: excluding tax, and including it (None: the part has no tax rates)."""

    excl_tax: Decimal
    incl_tax: Decimal | None


@dataclass(frozen=True)
class Cost:
    """The cost of a transaction under a tariff."""

    tariff_id: str
    currency: str
    type_of_cost: str  # NormalCost, MinCost or MaxCost
    parts: dict[str, PartCost] = field(default_factory=dict)  # energy, charging_time, idle_time, fixed_fee
    total_excl_tax: Decimal = Decimal(0)
    total_incl_tax: Decimal | None = None


def with_tax(amount: Decimal, tax_rates: list[dict] | None) -> Decimal | None:
    """``amount`` plus its taxes (percent), stack by stack: a higher stack also taxes the lower ones' tax."""
    if not tax_rates:
        return None
    stacks: dict[int, Decimal] = {}
    for rate in tax_rates:
        stacks[rate.get("stack") or 0] = stacks.get(rate.get("stack") or 0, Decimal(0)) + dec(rate["tax"])
    total = amount
    for stack in sorted(stacks):
        total += total * stacks[stack] / 100
    return total


def energy_cost(energy: dict, energy_Wh: Decimal) -> Decimal:
    """The energy part before tax: each Wh priced by the first price whose energy range holds it."""
    prices = energy.get("prices") or []
    points = {Decimal(0), energy_Wh}
    for price in prices:
        for name in _ENERGY_CONDITIONS:
            bound = (price.get("conditions") or {}).get(name)
            if bound is not None and 0 < dec(bound) < energy_Wh:
                points.add(dec(bound))
    edges = sorted(points)
    total = Decimal(0)
    for start, end in zip(edges, edges[1:]):
        price = next((p for p in prices if _holds(p.get("conditions") or {}, start)), None)
        if price is not None:
            total += dec(price["price_kwh"]) * (end - start) / 1000
    return total


def _holds(conditions: dict, energy_Wh: Decimal) -> bool:
    low, high = conditions.get("min_energy"), conditions.get("max_energy")
    return (low is None or energy_Wh >= dec(low)) and (high is None or energy_Wh < dec(high))


def calculate(tariff: dict, usage: Usage) -> Cost:
    """The cost of ``usage`` under ``tariff`` (one :func:`check` accepts), in the tariff's currency."""
    raw = {
        "energy": lambda part: energy_cost(part, usage.energy_Wh),
        "charging_time": lambda part: _first(part, "price_minute") * Decimal(usage.charging_s) / 60,
        "idle_time": lambda part: _first(part, "price_minute") * Decimal(usage.idle_s) / 60,
        "fixed_fee": lambda part: _first(part, "price_fixed"),
    }
    parts: dict[str, PartCost] = {}
    for name, price_of in raw.items():
        part = tariff.get(name)
        if not part or not part.get("prices"):
            continue
        excl = price_of(part)
        incl = with_tax(excl, part.get("tax_rates"))
        parts[name] = PartCost(money(excl), None if incl is None else money(incl))
    total_excl = sum((p.excl_tax for p in parts.values()), Decimal(0))
    taxed = any(p.incl_tax is not None for p in parts.values())
    total_incl = (sum(((p.excl_tax if p.incl_tax is None else p.incl_tax) for p in parts.values()), Decimal(0))
                  if taxed else None)
    kind = "NormalCost"
    for bound, name, beyond in ((tariff.get("min_cost"), "MinCost", lambda a, b: a < b),
                                (tariff.get("max_cost"), "MaxCost", lambda a, b: a > b)):
        if not bound:
            continue
        if bound.get("excl_tax") is not None and beyond(total_excl, dec(bound["excl_tax"])):
            total_excl, kind = money(dec(bound["excl_tax"])), name
            if bound.get("incl_tax") is not None:
                total_incl = money(dec(bound["incl_tax"]))
        elif (bound.get("incl_tax") is not None and total_incl is not None
              and beyond(total_incl, dec(bound["incl_tax"]))):
            total_incl, kind = money(dec(bound["incl_tax"])), name
    return Cost(tariff["tariff_id"], tariff["currency"], kind, parts, total_excl, total_incl)


def _first(part: dict, key: str) -> Decimal:
    return dec(part["prices"][0][key])  # no conditions here (check): the first price holds


class TariffBook:
    """The default tariff of each EVSE, and the tariff each transaction is priced with, in the state store.

    ``store`` is the key/value state store (``get``/``put``/``delete``); the book reads it every time, so
    the protocol handlers and the transaction codec may each hold a book on the same store.
    """

    def __init__(self, store, *, evse_ids):
        self._store = store
        self._evse_ids = evse_ids  # callable: the station's EVSE ids

    def defaults(self) -> dict[int, dict]:
        """The default tariff of each EVSE that has one."""
        return {int(k): v for k, v in (self._store.get(_STORE_KEY) or {}).items()}

    def set_default(self, evse_id: int, tariff: dict, *, now: float | None = None) -> str:
        """Install ``tariff`` as the default of EVSE ``evse_id`` (0: of every EVSE); raise TariffRefused."""
        check(tariff, now=now)
        current = self.defaults()
        if any(t["tariff_id"] == tariff["tariff_id"] and t != tariff for t in current.values()):
            raise TariffRefused("DuplicateTariffId", f"another tariff {tariff['tariff_id']} is installed")
        for target in (self._evse_ids() if evse_id == 0 else [evse_id]):
            current[target] = tariff
        self._store.put(_STORE_KEY, {str(k): v for k, v in current.items()})
        return "Accepted"

    def for_evse(self, evse_id: int) -> dict | None:
        """The default tariff of an EVSE, or None."""
        return self.defaults().get(evse_id)

    def clear(self, *, tariff_ids: list[str] | None, evse_id: int | None) -> list[tuple[str | None, bool]]:
        """Remove default tariffs: those named (all when None) at ``evse_id`` (every EVSE when None or 0).

        Returns (tariff id, whether one was removed) per named id, or per id removed when none are named.
        """
        current = self.defaults()
        hit = {k: t for k, t in current.items() if (not evse_id or k == evse_id)
               and (tariff_ids is None or t["tariff_id"] in tariff_ids)}
        for k in hit:
            del current[k]
        self._store.put(_STORE_KEY, {str(k): v for k, v in current.items()})
        removed = {t["tariff_id"] for t in hit.values()}
        if tariff_ids is None:
            return [(tid, True) for tid in sorted(removed)]
        return [(tid, tid in removed) for tid in tariff_ids]

    def bind(self, ref: str, evse_id: int) -> dict | None:
        """The tariff transaction ``ref`` is priced with: its EVSE's default, fixed the first time this is asked."""
        key = _BOUND_KEY + ref
        bound = self._store.get(key)
        if bound is None:
            bound = {"tariff": self.for_evse(evse_id)}
            self._store.put(key, bound)
        return bound["tariff"]

    def note_state(self, ref: str, *, seq_no: int, charging: bool, timestamp: float) -> None:
        """Account a reported state of a bound transaction: charging or not, since ``timestamp``.

        Each record counts once (by ``seq_no``), however often it is encoded again for a resend.
        """
        key = _BOUND_KEY + ref
        bound = self._store.get(key)
        if bound is None or seq_no <= bound.get("seq_no", -1):
            return
        if bound.get("charging_since") is not None:
            bound["charging_s"] = bound.get("charging_s", 0.0) + max(0.0, timestamp - bound["charging_since"])
        bound["charging_since"] = timestamp if charging else None
        bound["seq_no"] = seq_no
        self._store.put(key, bound)

    def usage(self, ref: str, *, started_at: float, stopped_at: float, energy_Wh: float) -> Usage:
        """What transaction ``ref`` used: the time it spent charging (as :meth:`note_state` saw it), the rest idle."""
        bound = self._store.get(_BOUND_KEY + ref) or {}
        charging = bound.get("charging_s", 0.0)
        if bound.get("charging_since") is not None:
            charging += max(0.0, stopped_at - bound["charging_since"])
        duration = round(max(0.0, stopped_at - started_at))
        charging_s = min(round(charging), duration)
        return Usage(dec(round(energy_Wh, 3)), charging_s, duration - charging_s)  # to the mWh: a meter's best

    def release(self, ref: str) -> None:
        """Forget the tariff of an ended transaction whose cost went out."""
        self._store.delete(_BOUND_KEY + ref)

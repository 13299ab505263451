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

A transaction is priced with its EVSE's default tariff (fixed at its start, :meth:`TariffBook.bind`),
unless the CSMS gave a tariff for its driver with the idToken's authorization (that one, from the
start), or changed its tariff while it runs (:meth:`TariffBook.change`: what it used until the change
stays priced with the tariff it had, a period of its own; every period is priced by its tariff like a
transaction of its own, and the cost is their sum, :func:`combined`).
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
_DRIVER_KEY = "tariffs.driver"  # {idToken: {"tariff": TariffType dict, "at": time}}: from an Authorize answer
#: How long a driver tariff waits for its idToken's transaction (authorization to plug-in, at most).
DRIVER_TARIFF_WAIT_S = 600


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


def _usage(started_at: float, stopped_at: float, energy_Wh: float, charging: float) -> Usage:
    duration = round(max(0.0, stopped_at - started_at))
    charging_s = min(round(charging), duration)
    return Usage(dec(round(energy_Wh, 3)), charging_s, duration - charging_s)  # to the mWh: a meter's best


@dataclass(frozen=True)
class PricedPeriod:
    """A part of a transaction priced with one tariff: from ``started_at``, what it used, what that cost."""

    started_at: float
    usage: Usage
    cost: Cost


def combined(costs: list[Cost]) -> Cost:
    """The cost of a transaction priced in periods (a tariff change): the sum of the periods' costs.

    Each period is priced with its tariff as a transaction of its own would be (its fixed fee, energy
    thresholds counted from the period's start, its minCost/maxCost); the parts and totals add up.
    """
    if len(costs) == 1:
        return costs[0]
    parts: dict[str, PartCost] = {}
    for cost in costs:
        for name, part in cost.parts.items():
            was = parts.get(name)
            if was is None:
                parts[name] = part
                continue
            taxed = was.incl_tax is not None or part.incl_tax is not None
            parts[name] = PartCost(was.excl_tax + part.excl_tax, (
                (was.excl_tax if was.incl_tax is None else was.incl_tax)
                + (part.excl_tax if part.incl_tax is None else part.incl_tax)) if taxed else None)
    total_excl = sum((c.total_excl_tax for c in costs), Decimal(0))
    taxed = any(c.total_incl_tax is not None for c in costs)
    total_incl = (sum(((c.total_excl_tax if c.total_incl_tax is None else c.total_incl_tax) for c in costs),
                      Decimal(0)) if taxed else None)
    kinds = {c.type_of_cost for c in costs}
    kind = kinds.pop() if len(kinds) == 1 else "NormalCost"
    return Cost(costs[-1].tariff_id, costs[-1].currency, kind, parts, total_excl, total_incl)


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

    def change(self, ref: str, tariff: dict, *, at: float, energy_Wh: float) -> None:
        """Price running transaction ``ref`` with ``tariff`` from ``at`` on (ChangeTransactionTariff).

        What it used until then (``energy_Wh`` since its start, and its charging time so far) stays priced
        with the tariff it had: a period of its own. Raises TariffRefused: a tariff :func:`check` refuses,
        or NoCurrencyChange (a transaction is priced in one currency). A transaction that had no tariff
        is priced with this one from ``at`` on; what it used before is free.
        """
        check(tariff, now=at)
        key = _BOUND_KEY + ref
        bound = self._store.get(key) or {"tariff": None}
        old = bound.get("tariff")
        if old is not None and old["currency"] != tariff["currency"]:
            raise TariffRefused("NoCurrencyChange", f"transaction {ref} is priced in {old['currency']}, "
                                                    f"not {tariff['currency']}")
        bound.setdefault("periods", []).append({"tariff": old, "until": at, "energy_Wh": energy_Wh,
                                                "charging_s": self._charging_s(bound, at)})
        bound["tariff"] = tariff
        self._store.put(key, bound)

    def offer_driver_tariff(self, id_token: str, tariff: dict, *, now: float) -> None:
        """Keep the tariff the CSMS gave with an idToken's authorization, for that idToken's next transaction
        (:meth:`take_driver_tariff`); raise TariffRefused (and keep nothing) if it cannot be priced."""
        check(tariff, now=now)
        offered = {k: v for k, v in (self._store.get(_DRIVER_KEY) or {}).items()
                   if now - v["at"] <= DRIVER_TARIFF_WAIT_S}  # older offers went unused: forget them
        offered[id_token] = {"tariff": tariff, "at": now}
        self._store.put(_DRIVER_KEY, offered)

    def take_driver_tariff(self, ref: str, evse_id: int, id_token: str, *, now: float) -> dict | None:
        """Price transaction ``ref`` of ``id_token`` with the driver tariff offered for it (if one is, recently),
        instead of the default tariff, from its start; the offer is used up. Returns the tariff applied."""
        offered = self._store.get(_DRIVER_KEY) or {}
        offer = offered.pop(id_token, None)
        if offer is None:
            return None
        self._store.put(_DRIVER_KEY, offered)
        if now - offer["at"] > DRIVER_TARIFF_WAIT_S:
            return None
        key = _BOUND_KEY + ref
        bound = self._store.get(key) or {}
        bound["tariff"] = offer["tariff"]
        self._store.put(key, bound)
        return offer["tariff"]

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
        return _usage(started_at, stopped_at, energy_Wh, self._charging_s(bound, stopped_at))

    @staticmethod
    def _charging_s(bound: dict, at: float) -> float:
        charging = bound.get("charging_s", 0.0)
        if bound.get("charging_since") is not None:
            charging += max(0.0, at - bound["charging_since"])
        return charging

    def cost(self, ref: str, evse_id: int, *, started_at: float, stopped_at: float,
             energy_Wh: float) -> tuple[Cost, Usage, list[PricedPeriod]] | None:
        """The cost of transaction ``ref`` until ``stopped_at`` (``energy_Wh`` since its start), its whole usage,
        and each period priced by one tariff (more than one after a tariff change); None: it has no tariff."""
        tariff = self.bind(ref, evse_id)
        bound = self._store.get(_BOUND_KEY + ref) or {}
        total = self.usage(ref, started_at=started_at, stopped_at=stopped_at, energy_Wh=energy_Wh)
        changes = bound.get("periods") or []
        if not changes:
            if not tariff:
                return None
            cost = calculate(tariff, total)
            return cost, total, [PricedPeriod(started_at, total, cost)]
        marks = [(started_at, 0.0, 0.0)] + [(c["until"], c["energy_Wh"], c["charging_s"]) for c in changes]
        marks.append((stopped_at, energy_Wh, self._charging_s(bound, stopped_at)))
        tariffs = [c["tariff"] for c in changes] + [tariff]
        periods = []
        for priced_with, (start, e0, c0), (end, e1, c1) in zip(tariffs, marks, marks[1:]):
            if priced_with:  # a period without a tariff (none until the first change) costs nothing
                usage = _usage(start, max(start, end), max(0.0, e1 - e0), max(0.0, c1 - c0))
                periods.append(PricedPeriod(start, usage, calculate(priced_with, usage)))
        if not periods:
            return None
        return combined([p.cost for p in periods]), total, periods

    def release(self, ref: str) -> None:
        """Forget the tariff of an ended transaction whose cost went out."""
        self._store.delete(_BOUND_KEY + ref)

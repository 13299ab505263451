"""Reports of the device model: which variables GetBaseReport/GetReport select, and NotifyReport chunking."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agent.core.device_model.catalog import Entry
from agent.core.device_model.datatypes import (
    ComponentCriterion,
    ComponentId,
    Mutability,
    ReportBase,
    ReportItem,
)

Reader = Callable[[Entry], "str | None"]

WRITABLE = (Mutability.READ_WRITE, Mutability.WRITE_ONLY)
# SummaryInventory: availability, and any of these standard problem flags that is set.
SUMMARY_STATE = "AvailabilityState"
SUMMARY_FLAGS = ("Problem", "Tripped", "Overload", "Fallback")


def select_base(entries: Iterable[Entry], base: ReportBase, read: Reader) -> list[Entry]:
    """The variables of a base report: all, the writable ones, or the availability/problem summary."""
    if base is ReportBase.FULL_INVENTORY:
        return list(entries)
    if base is ReportBase.CONFIGURATION_INVENTORY:
        return [e for e in entries if e.mutability in WRITABLE]
    return [e for e in entries if e.name == SUMMARY_STATE or (e.name in SUMMARY_FLAGS and read(e) == "true")]


def select_custom(entries: Sequence[Entry], read: Reader, *, criteria: Iterable[str] | None,
                  component_variables: list[dict] | None) -> list[Entry]:
    """The variables of a GetReport: components meeting any criterion, then the listed component/variables.

    A component without the criterion's variable counts as active, available
    and enabled (it has no switch to be off), and as free of problems.
    ``component_variables`` holds ComponentVariableType dicts in snake_case: a
    component without ``evse`` means every instance of that name, a missing
    ``connector_id`` every connector of the EVSE, a missing ``variable`` every
    variable of the component, a variable without ``instance`` every instance.
    ValueError for an unknown criterion.
    """
    chosen = list(entries)
    if criteria:
        wanted = [ComponentCriterion(c) for c in criteria]
        meeting = {c for c in {e.component for e in chosen} if _meets_any(c, wanted, chosen, read)}
        chosen = [e for e in chosen if e.component in meeting]
    if component_variables is not None:
        chosen = [e for e in chosen if any(_selected(e, s) for s in component_variables)]
    return chosen


def _meets_any(component: ComponentId, criteria: list[ComponentCriterion], entries: Sequence[Entry],
               read: Reader) -> bool:
    for criterion in criteria:
        flag = next((e for e in entries if e.component == component and e.name == criterion.value
                     and e.instance is None), None)
        if flag is None:
            if criterion is not ComponentCriterion.PROBLEM:
                return True
        elif read(flag) == "true":
            return True
    return False


def _selected(entry: Entry, selector: dict) -> bool:
    """Does one ComponentVariableType dict select this variable?"""
    component = selector.get("component") or {}
    if str(component.get("name", "")).lower() != entry.component.name.lower():
        return False
    if component.get("instance") is not None:
        return False  # this station has no component instances
    if not _same_evse(component.get("evse"), entry.component):
        return False
    variable = selector.get("variable")
    if variable is None:
        return True
    if str(variable.get("name", "")).lower() != entry.name.lower():
        return False
    instance = variable.get("instance")
    return instance is None or (entry.instance or "").lower() == str(instance).lower()


def _same_evse(evse: dict | None, component: ComponentId) -> bool:
    if evse is None:
        return True
    if evse.get("id") != component.evse_id:
        return False
    connector_id = evse.get("connector_id")
    return connector_id is None or connector_id == component.connector_id


def report_item(entry: Entry, value: str | None, *, characteristics: bool = True) -> ReportItem:
    """One ReportDataType; a write-only value is never included, nor an unknown one."""
    attribute: dict[str, Any] = {"type": "Actual"}
    if value is not None and entry.mutability is not Mutability.WRITE_ONLY:
        attribute["value"] = value
    attribute.update(mutability=entry.mutability.value, persistent=entry.persistent, constant=entry.constant)
    return ReportItem(entry.component.as_dict(), entry.variable_dict(), [attribute],
                      entry.characteristics.as_dict() if characteristics else None)


def chunk(items: Sequence, *, items_per_message: int, bytes_per_message: int,
          size_of: Callable[[list], int]) -> list[list]:
    """Split items into messages of at most ``items_per_message`` items and ``bytes_per_message`` bytes.

    ``size_of(items)`` is the size of a whole message carrying those items. A
    message's size is estimated from each item's own size (as a JSON array
    grows), then measured once; a message the estimate got wrong is split
    again item by item. ValueError if one item alone is too big.
    """
    if items_per_message < 1:
        raise ValueError("items_per_message must be at least 1")
    empty = size_of([])
    separator = _separator(items, size_of, empty)
    chunks: list[list] = []
    current: list = []
    estimate = empty
    for item in items:
        extra = size_of([item]) - empty
        if empty + extra > bytes_per_message:
            raise ValueError(f"one report item alone takes {empty + extra} bytes; the limit is {bytes_per_message}")
        grown = estimate + extra + (separator if current else 0)
        if current and (len(current) >= items_per_message or grown > bytes_per_message):
            chunks.extend(_fitted(current, bytes_per_message, size_of))
            current, grown = [], empty + extra
        current.append(item)
        estimate = grown
    if current:
        chunks.extend(_fitted(current, bytes_per_message, size_of))
    return chunks


def _separator(items: Sequence, size_of: Callable[[list], int], empty: int) -> int:
    """Bytes added between two items (e.g. ", " in a JSON array)."""
    if len(items) < 2:
        return 0
    pair = size_of([items[0], items[1]])
    return max(0, pair - size_of([items[0]]) - size_of([items[1]]) + empty)


def _fitted(group: list, limit: int, size_of: Callable[[list], int]) -> list[list]:
    """``group`` as is when it really fits, else split greedily by measuring."""
    if size_of(group) <= limit:
        return [group]
    parts: list[list] = [[]]
    for item in group:
        if parts[-1] and size_of(parts[-1] + [item]) > limit:
            parts.append([])
        parts[-1].append(item)
    return parts

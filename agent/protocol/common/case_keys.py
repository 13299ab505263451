"""camelCase <-> snake_case payload keys, as the ``ocpp`` library converts them, but memoized.

The library runs two regular expressions per key on every message; a SendLocalList
of 10,000 entries has 20,000 keys of only three names. The key spelling rules stay
the library's (its converter is asked once per distinct key), so handlers receive
exactly the arguments the library would give them.
"""

from __future__ import annotations

from functools import lru_cache

from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case

# Bounded: a hostile CSMS may send any number of distinct (unknown) keys.
_CACHE_SIZE = 4096


@lru_cache(maxsize=_CACHE_SIZE)
def _snake_key(key: str) -> str:
    return next(iter(camel_to_snake_case({key: None})))


@lru_cache(maxsize=_CACHE_SIZE)
def _camel_key(key: str) -> str:
    return next(iter(snake_to_camel_case({key: None})))


def to_snake(data):
    """Every dict key inside ``data`` from camelCase to snake_case (lists and nesting followed)."""
    if isinstance(data, dict):
        return {_snake_key(key): to_snake(value) for key, value in data.items()}
    if isinstance(data, list):
        return [to_snake(value) for value in data]
    return data


def to_camel(data):
    """Every dict key inside ``data`` from snake_case to camelCase (lists and nesting followed)."""
    if isinstance(data, dict):
        return {_camel_key(key): to_camel(value) for key, value in data.items()}
    if isinstance(data, list):
        return [to_camel(value) for value in data]
    return data

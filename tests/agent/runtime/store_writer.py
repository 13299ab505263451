"""Test helper for the kill test: write to a StateStore until SIGKILLed.

Usage: ``python tests/agent/store_writer.py DBPATH``. Prints ``ready`` once
the store is open, then appends outbox items forever and prints each item's
id only after the write returned, i.e. after the store acknowledged it. Every
fourth round it appends a *pair* of items and bumps the ``pairs`` counter in
one transaction, so the test can check that a transaction is all or nothing.
"""

import sys
from pathlib import Path

# Run as a script, so make the repository importable without relying on an install.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from agent.runtime.store import StateStore  # noqa: E402


def append_pair(store: StateStore) -> list[int]:
    """Append two items of one group and count the pair, atomically."""
    with store.transaction():
        number = store.get("pairs", 0) + 1
        items = [store.outbox.append("Pair", {"pair": number, "half": half}, group=f"pair-{number}")
                 for half in (1, 2)]
        store.put("pairs", number)
    return [item.id for item in items]


def main(db_path: str) -> None:
    """Open the store and write until killed."""
    store = StateStore(db_path)
    print("ready", flush=True)
    for round_number in range(10**9):
        if round_number % 4 == 3:
            ids = append_pair(store)
        else:
            # Vary the size so some appends span several pages.
            payload = {"round": round_number, "pad": "x" * (round_number * 37 % 5000)}
            ids = [store.outbox.append("MeterValues", payload).id]
        print("\n".join(map(str, ids)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

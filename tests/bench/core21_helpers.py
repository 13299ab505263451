"""The bare `ocpp` 2.1 station the 2.1 GetVariables CPU benchmark compares the agent with.

The same station as ``core201_helpers`` (GetVariables answered from a fixed table), on the
library's ``ocpp.v21.ChargePoint`` and subprotocol ``ocpp2.1``::

    python -m tests.bench.core21_helpers URL STATION_ID VALUES_JSON_PATH [--sync-validation]
"""

from __future__ import annotations

import sys

from tests.bench.core16_helpers import bare_main, serve_bare
from tests.bench.core201_helpers import _bare_station_class


async def serve_bare_station(url: str, station_id: str, values: dict[str, str]) -> None:
    """The bare 2.1 station answering GetVariables from ``values``."""
    cls = _bare_station_class("2.1")
    await serve_bare(url, station_id, subprotocol="ocpp2.1", charge_point=lambda ws: cls(station_id, ws, values))


def main(argv: list[str]) -> int:
    """Serve the bare 2.1 station."""
    return bare_main(argv, module="tests.bench.core21_helpers", what="bare 2.1 station", serve=serve_bare_station)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Hardware abstraction layer: one abstract role per device, drivers behind them.

Importing this package (or any module in it) never touches hardware: drivers
open their devices in ``start()``, and hardware libraries are imported lazily
by the driver modules that need them.
"""

"""A small CSMS built on the `ocpp` library, for `ocpp-agent demo` and the test suite."""

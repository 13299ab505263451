"""The mock hardware: every role in memory, drivable and observable, with its control socket and client."""

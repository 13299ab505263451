"""Hardware drivers: real implementations of the roles, each imported only when configured."""

"""`python -m agent` runs the command line, like the `ocpp-agent` script."""

from agent.cli import main

raise SystemExit(main())

"""``ocpp-agent web``: the local dashboard, a process of its own beside the daemon.

It reads the daemon's message log and state store read-only, and its live state from the status
socket (agent.status.client); it can change nothing. aiohttp (the optional extra ``ocpp-agent[web]``)
is imported only by this package's ``server`` and ``auth`` modules, never at import of the package.
"""

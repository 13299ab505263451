"""The daemon's status socket (``<data_dir>/agent.sock``) and its clients.

``client`` is the side other processes use (``ocpp-agent status``, ``ocpp-agent web``); it imports
nothing of the agent's runtime. ``server`` and ``snapshot`` run inside the daemon.
"""

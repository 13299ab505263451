"""Reliability, security and fault-injection suite (``make reliability``).

One module per part: power cuts, network faults, protocol fuzzing, hardware faults, security and
soak. Each part has a small smoke test in the default run and a full-size test behind the
``reliability`` marker; the full run records its figures (``figures``) and ``report`` turns them
into ``docs/RELIABILITY.md``.
"""

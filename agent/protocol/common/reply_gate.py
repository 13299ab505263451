"""The reply gate: while a CSMS request is being answered, the station sends no CALL of its own.

The OCPP use cases draw the answer first, and CSMSes that handle one exchange per
station at a time stall when a StatusNotification or StopTransaction arrives while
they wait for the CALLRESULT. So every outgoing CALL (a status, the outbox, a
triggered message, an @after hook's report) passes this gate just before its frame is
written; the adapter closes the gate when a CALL comes in and opens it once the answer
has been handed to the transport. One mechanism for every handler, none per message.

A handler runs on the connection's reader task and must not await a CALL of its own:
the gate would wait for the handler, the handler for the gate. That pattern is refused
at once with :class:`HandlerAwaitsCall` instead of hanging.
"""

from __future__ import annotations

import asyncio


class HandlerAwaitsCall(RuntimeError):
    """A request handler tried to send a CALL before answering: follow-ups go out after the reply."""


class ReplyGate:
    """Open unless a CSMS request is being answered; CALLs wait here until it is."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._handler: asyncio.Task | None = None  # the task answering the request (the reader)

    @property
    def is_open(self) -> bool:
        """Whether a CALL may go out now."""
        return self._open.is_set()

    def close(self) -> None:
        """A CSMS request came in on the current task: hold CALLs until its answer is written."""
        self._handler = asyncio.current_task()
        self._open.clear()

    def open(self) -> None:
        """The answer is on its way (or the connection ended): release the waiting CALLs."""
        self._handler = None
        self._open.set()

    async def passage(self, action: str) -> None:
        """Return once ``action`` may be written: at once when open, else after the answer.

        Checked again after every wake-up: when the next request was already read,
        the gate closed again before a woken CALL ran, and that request is answered first.
        """
        while not self._open.is_set():
            if asyncio.current_task() is self._handler:
                raise HandlerAwaitsCall(f"{action} sent from a request handler before its answer; "
                                        "send follow-ups from an @after hook or a task")
            await self._open.wait()

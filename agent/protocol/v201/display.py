"""OCPP 2.0.1 block O (display messages) and CostUpdated (block I) over ``agent.core.device_model.display_messages``."""

from __future__ import annotations

import logging

from ocpp.routing import after, on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from agent.runtime.clock import format_iso, unix_time
from agent.core.device_model.display_messages import DisplayMessage

log = logging.getLogger("agent.ocpp201")

# A message may carry 512 characters: a handful per NotifyDisplayMessages keeps each frame small;
# the rest follow with tbc.
MESSAGES_PER_NOTIFY = 8


def message_from_201(info: dict) -> DisplayMessage:
    """A MessageInfoType (snake_case dict) as the core's message; ValueError for a bad date-time."""
    content = info["message"]
    return DisplayMessage(
        id=info["id"], priority=info["priority"], content=content["content"], format=content["format"],
        language=content.get("language"), state=info.get("state"),
        start=unix_time(info.get("start_date_time")), end=unix_time(info.get("end_date_time")),
        transaction_id=info.get("transaction_id"), display=info.get("display"))


def message_to_201(message: DisplayMessage) -> dict:
    """The core's message as a MessageInfoType (snake_case dict, optional fields left out)."""
    content = {"format": message.format, "content": message.content}
    if message.language is not None:
        content["language"] = message.language
    info = {"id": message.id, "priority": message.priority, "message": content}
    optional = {"state": message.state, "transaction_id": message.transaction_id, "display": message.display,
                "start_date_time": format_iso(message.start) if message.start is not None else None,
                "end_date_time": format_iso(message.end) if message.end is not None else None}
    info.update((key, value) for key, value in optional.items() if value is not None)
    return info


class DisplayHandlers201:
    """Mixed into the 2.0.1 adapter: the messages are ``self.core.display_messages`` (absent or None:
    every message is Rejected and none is found)."""

    def _display_messages(self):
        """The core's display messages, or None until the composition root provides them."""
        return self.core.display_messages if self.core is not None else None

    @on(Action.set_display_message)
    def on_set_display_message(self, message: dict, **_):
        """SetDisplayMessage: install (or replace) a message; NotSupportedMessageFormat for HTML or URI on
        a text display, UnknownTransaction for a transaction that does not run here."""
        messages = self._display_messages()
        if messages is None:
            return call_result.SetDisplayMessage(status="Rejected")
        try:
            parsed = message_from_201(message)
        except ValueError as exc:
            log.warning("SetDisplayMessage %s refused: %s", message.get("id"), exc)
            return call_result.SetDisplayMessage(status="Rejected", status_info={"reason_code": "InvalidValue"})
        return call_result.SetDisplayMessage(status=messages.install(parsed).value)

    @on(Action.get_display_messages)
    def on_get_display_messages(self, request_id: int, id: list[int] | None = None,  # noqa: A002 (OCPP's name)
                                priority: str | None = None, state: str | None = None, **_):
        """GetDisplayMessages: Accepted when a message passes the filters (they follow in
        NotifyDisplayMessages), else Unknown."""
        messages = self._display_messages()
        found = messages.find(ids=id, priority=priority, state=state) if messages is not None else []
        if not hasattr(self, "_display_reports"):
            self._display_reports: dict[int, list[DisplayMessage]] = {}
        if found:
            self._display_reports[request_id] = found  # as they were when answered
        return call_result.GetDisplayMessages(status="Accepted" if found else "Unknown")

    @after(Action.get_display_messages)
    async def after_get_display_messages(self, request_id: int, **_):
        """Send what was found, MESSAGES_PER_NOTIFY at a time (tbc while more follow)."""
        found = getattr(self, "_display_reports", {}).pop(request_id, [])
        chunks = [found[i:i + MESSAGES_PER_NOTIFY] for i in range(0, len(found), MESSAGES_PER_NOTIFY)]
        for index, chunk in enumerate(chunks):
            await self.call(call.NotifyDisplayMessages(request_id=request_id, tbc=index < len(chunks) - 1,
                                                       message_info=[message_to_201(m) for m in chunk]))

    @on(Action.clear_display_message)
    def on_clear_display_message(self, id: int, **_):  # noqa: A002 (OCPP's name)
        """ClearDisplayMessage: Accepted if it was installed, else Unknown."""
        messages = self._display_messages()
        cleared = messages is not None and messages.clear(id)
        return call_result.ClearDisplayMessage(status="Accepted" if cleared else "Unknown")

    @on(Action.cost_updated)
    def on_cost_updated(self, total_cost: float, transaction_id: str, **_):
        """CostUpdated: answered at once; the cost is shown from the @after hook."""
        return call_result.CostUpdated()

    @after(Action.cost_updated)
    def after_cost_updated(self, total_cost: float, transaction_id: str, **_):
        """Show the running cost while its transaction runs."""
        messages = self._display_messages()
        if messages is not None:
            messages.cost_updated(transaction_id, total_cost)

"""Adapter base shared by the OCPP 1.6J, 2.0.1 and 2.1 adapters.

It sits in front of the `ocpp` library's ``ChargePoint`` and owns the OCPP-J
RPC layer: frame parsing with correct CALLERRORs (see ``rpc``), one outstanding
CALL at a time, pending CALLs failed at once when the connection drops, replies
with unknown ids logged and dropped. The registration life cycle (BootNotification,
then Heartbeat at the interval the CSMS gave) is mixed in from ``registration``, the
requests both versions word alike from ``handlers``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ocpp.charge_point import remove_nones, serialize_as_dict
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult

from agent.runtime.clock import Clock
from agent.errors import CallAborted, CallErrorReceived, CallTimeout, ConnectionLost, InvalidResponse
from agent.protocol.common import rpc
from agent.protocol.common.boot import BootRecord
from agent.protocol.common.case_keys import to_camel, to_snake
from agent.protocol.common.handlers import SharedHandlers
from agent.protocol.common.outbox import OutboxSender
from agent.protocol.common.registration import Registration
from agent.protocol.common.reply_gate import ReplyGate

log = logging.getLogger("agent.ocpp")


@dataclass(frozen=True)
class StationInfo:
    """What the station says about itself in BootNotification."""

    vendor: str
    model: str
    serial_number: str = ""
    firmware_version: str = ""


@dataclass(frozen=True)
class Frame:
    """A parsed OCPP-J frame."""

    message_type: int
    message_id: str
    action: str | None = None
    payload: Any = None
    error_code: str | None = None
    error_description: str = ""


class AdapterBase(Registration, SharedHandlers):
    """Version-neutral RPC and registration logic; mixed in before the library's ChargePoint."""

    ocpp_version: ClassVar[str]
    subprotocol: ClassVar[str]
    known_actions: ClassVar[frozenset[str]]
    #: 1.6 forbids answering CSMS requests while the registration is Rejected.
    silent_while_rejected: ClassVar[bool] = False

    def __init__(
        self,
        station_id: str,
        connection,
        *,
        station: StationInfo,
        settings,
        clock: Clock,
        response_timeout_s: float = 30.0,
        ticker=None,
        core=None,
        boot: BootRecord | None = None,
    ):
        super().__init__(station_id, connection, response_timeout=response_timeout_s, logger=log)
        self.station = station
        self.settings = settings
        self.clock = clock
        self.registration: str | None = None  # Accepted / Pending / Rejected once answered
        self.accepted = asyncio.Event()
        self._pending: dict[str, asyncio.Future] = {}
        self._lost = False
        self._tasks: set[asyncio.Task] = set()
        self._ticker = ticker
        self._closed = asyncio.Event()
        self._gate = ReplyGate()  # the station's CALLs wait while a CSMS request is answered
        self.core = core  # agent.core.services.CoreServices, or None for a bare protocol session
        self.boot_record = boot  # this process's boot (None: every connection boots)
        self.resumed = False  # this connection resumed on a boot accepted earlier, without a BootNotification
        self._boot_trigger = asyncio.Event()  # TriggerMessage(BootNotification) while not yet accepted

    # ----------------------------------------------------------- reading

    async def start(self) -> None:
        """Read and route frames until the connection ends (raises ConnectionLost)."""
        try:
            while True:
                text = await self._connection.recv()
                await self.route_message(text)
        finally:
            self.connection_lost()

    async def route_message(self, raw_msg: str) -> None:
        """Route one incoming frame; malformed frames get the right CALLERROR or are dropped."""
        try:
            frame = parse_frame(raw_msg, self.ocpp_version)
        except rpc.FrameError as exc:
            log.warning("malformed frame from CSMS (%s): %.200s", exc.description, raw_msg)
            await self._send(exc.to_callerror())
            return
        if frame is None:
            return
        if frame.message_type == 2:
            await self._dispatch_call(frame)
            return
        if frame.message_type in rpc.unanswered_types(self.ocpp_version):
            self.unanswered_frame(frame)  # 2.1's CALLRESULTERROR and SEND: never answered
            return
        future = self._pending.get(frame.message_id)
        if future is None or future.done():
            log.warning("dropping reply with unknown message id %.40r", frame.message_id)
            return
        future.set_result(frame)

    async def _dispatch_call(self, frame: Frame) -> None:
        if self.silent_while_rejected and self.registration == "Rejected":
            log.warning("registration Rejected: not answering %.60s", frame.action)
            return
        self._after_reply = []
        self._gate.close()  # follow-ups of this request (and anything else) go out after its answer
        try:
            try:
                reply = await self._handle_call(frame)
            except rpc.FrameError as exc:
                # Cut: a hostile CSMS must not be able to write megabytes into the journal per frame.
                log.warning("%.60s %s rejected: %s %.200s", frame.action, frame.message_id, exc.code,
                            exc.description)
                reply = exc.to_callerror()
            await self._send(reply)
        finally:
            self._gate.open()
            waiting, self._after_reply = self._after_reply, None
            for callback in waiting:
                callback()

    def unanswered_frame(self, frame: Frame) -> None:
        """A frame of a type that is never answered (2.1: CALLRESULTERROR, SEND); the version handles it."""
        log.warning("dropping message of type %d %.40r", frame.message_type, frame.message_id)

    def after_reply(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the reply to the CALL being handled is on its way (now, if there is none).

        For consequences that must not overtake the answer, such as dropping the
        connection after an accepted SecurityProfile change.
        """
        waiting = getattr(self, "_after_reply", None)
        if waiting is None:
            callback()
        else:
            waiting.append(callback)

    async def _handle_call(self, frame: Frame) -> str:
        """Run the @on handler for a CALL and return the reply frame."""
        handlers = self.route_map.get(frame.action) or {}
        handler = handlers.get("_on_action")
        if handler is None:
            known = frame.action in self.known_actions
            meaning = "unsupported_action" if known else "unknown_action"
            detail = "not supported by this station" if known else f"not an OCPP {self.ocpp_version} action"
            raise rpc.FrameError(frame.message_id, rpc.error_code(self.ocpp_version, meaning), f"{frame.action} is {detail}")
        if not handlers.get("_skip_schema_validation", False):
            self._check_payload(frame)
        kwargs = to_snake(frame.payload)
        try:
            result = handler(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except OCPPError as exc:
            code = rpc.spell_error_code(self.ocpp_version, exc.code)
            return rpc.callerror_frame(frame.message_id, code, exc.description or code)
        except Exception:
            log.exception("handler for %s failed", frame.action)
            code = rpc.error_code(self.ocpp_version, "internal")
            return rpc.callerror_frame(frame.message_id, code, f"{frame.action} could not be processed")
        reply = self._reply_frame(frame, result)
        self._schedule_after(handlers, kwargs)
        return reply

    def _check_payload(self, frame: Frame) -> None:
        problem = rpc.validate(self.ocpp_version, 2, frame.action, frame.payload)
        if problem is not None:
            meaning, description = problem
            raise rpc.FrameError(frame.message_id, rpc.error_code(self.ocpp_version, meaning), description)

    def _reply_frame(self, frame: Frame, result) -> str:
        body = to_camel(remove_nones(serialize_as_dict(result)))
        problem = rpc.validate(self.ocpp_version, 3, frame.action, body)
        if problem is not None:
            # Our own bug: never put an invalid CALLRESULT on the wire.
            log.error("our %s response is invalid (%s): %s", frame.action, problem[1], body)
            code = rpc.error_code(self.ocpp_version, "internal")
            return rpc.callerror_frame(frame.message_id, code, f"{frame.action} could not be processed")
        return CallResult(frame.message_id, body).to_json()

    def _schedule_after(self, handlers: dict, kwargs: dict) -> None:
        """Run the @after hook once the answer is on its way, as a task: it may send CALLs, which must not
        block the reader."""
        after = handlers.get("_after_action")
        if after is not None:
            self.after_reply(lambda: self._run_after(after, kwargs))

    def _run_after(self, after: Callable, kwargs: dict) -> None:
        result = after(**kwargs)
        if inspect.isawaitable(result):
            self.spawn(result, name="after-hook")

    def spawn(self, coro, *, name: str) -> asyncio.Task:
        """Start a task tied to this connection: cancelled when it ends, failures logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, (CallAborted, ConnectionLost)):
                log.error("task %s failed", task.get_name(), exc_info=exc)

    # ----------------------------------------------------------- calling

    async def call(self, payload, suppress: bool = False, unique_id=None, skip_schema_validation=False):
        """Send a CALL and return the typed CALLRESULT.

        Raises CallErrorReceived, CallTimeout, CallAborted (connection dropped
        while waiting) or InvalidResponse; never returns None for an error
        (the library's ``suppress=True`` default hides failures).
        """
        action = payload.__class__.__name__
        body = remove_nones(to_camel(serialize_as_dict(payload)))
        problem = rpc.validate(self.ocpp_version, 2, action, body)
        if problem is not None:
            raise ValueError(f"refusing to send invalid {action}: {problem[1]}")
        async with self._call_lock:
            frame = await self._exchange(unique_id or str(self._unique_id_generator()), action, body)
        return self._typed_result(action, frame)

    async def _exchange(self, message_id: str, action: str, body: dict) -> Frame:
        await self._gate.passage(action)  # nothing may await between this and the write below
        if self._lost:
            raise CallAborted(f"{action}: not connected")
        future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            await self._send(Call(message_id, action, body).to_json())
            return await asyncio.wait_for(future, self._response_timeout)
        except asyncio.TimeoutError:
            raise CallTimeout(f"{action}: no reply within {self._response_timeout:g} s") from None
        except ConnectionLost as exc:
            raise CallAborted(f"{action}: connection lost while sending") from exc
        finally:
            self._pending.pop(message_id, None)

    def _typed_result(self, action: str, frame: Frame):
        if frame.message_type == 4:
            raise CallErrorReceived(action, frame.error_code, frame.error_description, frame.payload)
        problem = rpc.validate(self.ocpp_version, 3, action, frame.payload)
        if problem is not None:
            raise InvalidResponse(f"{action} response from CSMS is invalid: {problem[1]}")
        try:
            return getattr(self._call_result, action)(**to_snake(frame.payload))
        except TypeError as exc:
            raise InvalidResponse(f"{action} response from CSMS is invalid: {exc}") from None

    def connection_lost(self) -> None:
        """Fail every pending CALL at once and stop this connection's tasks."""
        if self._lost:
            return
        self._lost = True
        self.on_disconnected()
        self._closed.set()
        self._gate.open()  # CALLs held back fail below (not connected) instead of waiting
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CallAborted("connection to the CSMS lost"))
        for task in list(self._tasks):
            task.cancel()

    async def _send(self, message: str) -> None:
        log.debug("%s > %s", self.id, message)
        await self._connection.send(message)

    # ------------------------------------------------- the core, on this connection

    async def on_accepted(self) -> None:
        """Registration accepted (or resumed): report the statuses (after a boot every one, after a resume
        those that changed offline), deliver the outbox, authorize online."""
        core = self.core
        if core is None:
            return

        if core.network is not None:
            core.network.accepted()  # this connection's profile works: a pending raise is final
        codec = self.transaction_codec(core)
        self._outbox = OutboxSender(core.store, settings=self.settings, codec=codec, call=self.call)
        core.station.attach_port(self)
        core.authorizer.online = self._authorize_online
        if self.resumed:
            self.resend_changed_statuses()
        else:
            for evse_id, (status, error) in sorted(core.station.current_statuses().items()):
                self.status_changed(evse_id, status, error)
        self.spawn(self._outbox.run(), name="outbox")

    def on_disconnected(self) -> None:
        """Detach from the core: the station reports to nobody until the next registration."""
        core = self.core
        if core is not None and core.station.detach_port(self):
            core.authorizer.online = None

    def reservation_ended(self, reservation_id: int, status: str) -> None:
        """A reservation expired or was removed (CsmsPort); only 2.0.1 reports it."""

    def outbox_changed(self) -> None:
        """Records were queued: wake the outbox sender (CsmsPort)."""
        outbox = getattr(self, "_outbox", None)
        if outbox is not None:
            outbox.wake()

    async def settle(self, *, timeout: float) -> None:
        """Before a stop on purpose: the outbox delivers what is due (at most ``timeout`` s), then sends nothing
        more, so the CSMS gets a reset's Ended event before the restart and no transaction event twice."""
        outbox = getattr(self, "_outbox", None)
        if outbox is not None and not await outbox.settle(timeout=timeout):
            log.info("stopping with outbox records undelivered after %.0f s: they go out after the restart",
                     timeout)

    async def _send_quietly(self, request):
        """Send a CALL whose loss is not fatal (a status is re-sent after reconnecting, a Heartbeat at the
        next interval); return its result, or None when it was not delivered."""
        try:
            return await self.call(request)
        except (CallTimeout, CallErrorReceived, InvalidResponse) as exc:
            log.warning("%s not delivered: %s", type(request).__name__, exc)
            return None

    async def _notify(self, request) -> None:
        """Send a status notification; one lost with the connection is not an error."""
        try:
            await self.call(request)
        except (CallTimeout, CallAborted, ConnectionLost, CallErrorReceived, InvalidResponse) as exc:
            log.warning("%s not delivered: %s", type(request).__name__, exc)

    async def _authorize_online(self, id_token: str):
        from agent.core.charging.auth import CsmsUnavailable

        try:
            result = await self.call(self.authorize_request(id_token))
        except (CallTimeout, CallAborted, CallErrorReceived, InvalidResponse) as exc:
            raise CsmsUnavailable(f"Authorize failed: {exc}") from exc
        return self.id_token_info(result)

    async def data_transfer(self, vendor_id: str, *, message_id: str | None = None, data=None):
        """Send a vendor-specific DataTransfer to the CSMS and return (status, data)."""
        result = await self.call(self._call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data))
        return result.status, result.data

    # ------------------------------------------------- version-specific

    def transaction_codec(self, core):
        """The version's codec for the outbox records."""
        raise NotImplementedError

    def authorize_request(self, id_token: str):
        """The version's Authorize request."""
        raise NotImplementedError

    def id_token_info(self, result):
        """The core IdTokenInfo in an Authorize result."""
        raise NotImplementedError


def parse_frame(raw: str, version: str) -> Frame | None:
    """Parse an OCPP-J frame. Raise FrameError for a CALL that deserves a CALLERROR;
    return None for a malformed reply, which OCPP says to log and drop."""
    try:
        msg = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
        raise rpc.FrameError(None, rpc.error_code(version, "rpc"), "message is not valid JSON") from None
    except RecursionError:  # nested deeper than the parser goes: no OCPP message is
        raise rpc.FrameError(None, rpc.error_code(version, "rpc"), "message is nested too deeply") from None
    if not isinstance(msg, list) or not msg:
        raise rpc.FrameError(None, rpc.error_code(version, "rpc"), "message is not a non-empty JSON array")
    message_id = msg[1] if len(msg) > 1 and isinstance(msg[1], str) else None
    kind = msg[0]
    if kind == 2 and type(kind) is int:
        return _parse_call(msg, message_id, version)
    if kind in (3, 4) and type(kind) is int:
        return _parse_reply(msg, message_id)
    if type(kind) is int and kind in rpc.unanswered_types(version):  # int first: a list is unhashable
        return _parse_unanswered(msg, message_id)
    raise rpc.FrameError(message_id, rpc.error_code(version, "message_type"), f"message type {kind!r} is not supported")


def _parse_call(msg: list, message_id: str | None, version: str) -> Frame:
    if message_id is None or not 0 < len(message_id) <= 36:
        raise rpc.FrameError(None, rpc.error_code(version, "rpc"), "CALL has no readable message id")
    if len(msg) != 4 or not isinstance(msg[2], str):
        raise rpc.FrameError(message_id, rpc.error_code(version, "rpc"), "CALL must be [2, id, action, payload]")
    if not isinstance(msg[3], dict):
        raise rpc.FrameError(message_id, rpc.error_code(version, "format"), "CALL payload must be a JSON object")
    return Frame(2, message_id, action=msg[2], payload=msg[3])


def _parse_reply(msg: list, message_id: str | None) -> Frame | None:
    if message_id is None:
        log.warning("dropping reply without a message id: %.200s", msg)
        return None
    if msg[0] == 3 and len(msg) == 3 and isinstance(msg[2], dict):
        return Frame(3, message_id, payload=msg[2])
    if msg[0] == 4 and len(msg) in (4, 5) and isinstance(msg[2], str):
        description = msg[3] if isinstance(msg[3], str) else ""
        return Frame(4, message_id, error_code=msg[2], error_description=description,
                     payload=msg[4] if len(msg) == 5 else {})
    log.warning("dropping malformed reply %r", message_id)
    return None


def _parse_unanswered(msg: list, message_id: str | None) -> Frame | None:
    """A 2.1 CALLRESULTERROR ``[5, id, code, description, details]`` or SEND ``[6, id, action, payload]``;
    None for a malformed one, which is logged and dropped: neither kind may be answered."""
    if message_id is not None and msg[0] == rpc.CALLRESULTERROR and len(msg) in (4, 5) and isinstance(msg[2], str):
        return Frame(rpc.CALLRESULTERROR, message_id, error_code=msg[2],
                     error_description=msg[3] if isinstance(msg[3], str) else "",
                     payload=msg[4] if len(msg) == 5 else {})
    if message_id is not None and msg[0] == rpc.SEND and len(msg) == 4 and isinstance(msg[2], str) \
            and isinstance(msg[3], dict):
        return Frame(rpc.SEND, message_id, action=msg[2], payload=msg[3])
    log.warning("dropping malformed message of type %s: %.200s", msg[0], msg)
    return None

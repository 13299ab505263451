"""Protocol fuzzing: a hostile CSMS sends hypothesis-generated frames to the real agent process.

Every CALL must get a CALLRESULT or the right CALLERROR (``fuzz.expect``), nothing else may be
answered, the process must not die nor the connection drop, and afterwards a normal charging
session against a well-behaved CSMS must succeed. The smoke test sends ``FUZZ_SMOKE_FRAMES``
frames per version; the full-size run ``RELIABILITY_FUZZ_FRAMES`` (default 10,000) per version.
``RELIABILITY_FUZZ_SEED`` fixes hypothesis's seed (else a random one, recorded in the figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness import agent_config, running_agent, wait_until
from tests.reliability.conftest import full_size
from tests.reliability.daemon import Daemon, write_config
from tests.reliability.fuzz import Frame, HostileCsms, frames
from tests.reliability.oracle import expect, known_bug

FUZZ_SMOKE_FRAMES = 200
ANSWER_TIMEOUT_S = 15.0  # only waited out when no answer comes; generous for a loaded machine


class LoopThread:
    """An event loop in a thread: hypothesis runs its examples synchronously, the agent's peers are async."""

    def __enter__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()
        return self

    def run(self, coro, timeout: float = 120):
        """Run ``coro`` in the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc_info):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class FuzzBench:
    """A real agent process connected to a HostileCsms; counts what happens to each frame."""

    def __init__(self, tmp_path, version: str):
        self.tmp_path, self.version = tmp_path, version
        self.by_category: Counter = Counter()
        self.expected_answers = 0
        self.wrong: list[str] = []
        self.wrong_count = 0
        self.known_bugs: Counter = Counter()
        self.largest = 0
        self.normal_session = False

    async def open(self) -> None:
        """Start the hostile CSMS and the agent; wait until the agent has booted."""
        self.csms = HostileCsms(self.version)
        await self.csms.start()
        config = write_config(self.tmp_path, f"ws://127.0.0.1:{self.csms.port}/ocpp", version=self.version,
                              station_id="CP-FUZZ", logging={"message_log_max_MiB": 8},
                              variables={"OCPPCommCtrlr.RetryBackOffWaitMinimum": 1,
                                         "OCPPCommCtrlr.RetryBackOffRandomRange": 0})
        self.daemon = Daemon(config)
        await self.daemon.start()
        await wait_until(lambda: "StatusNotification" in self.csms.calls, timeout=20)

    async def exchange(self, frame: Frame) -> None:
        """Send one frame and judge the answer (or the silence) it gets."""
        assert self.daemon.running, f"the agent died (exit {self.daemon.process.returncode}):\n{self.daemon.log_tail()}"
        await asyncio.wait_for(self.csms.connected.wait(), 30)
        expectation = expect(frame.text, self.version)
        await self.csms.send(frame.text)
        self.by_category[frame.category] += 1
        self.largest = max(self.largest, len(frame.text))
        if expectation.kind == "none":
            return
        self.expected_answers += 1
        answer = await self._answer_to(expectation.message_id)
        problem = expectation.judge(answer, self.version)
        if problem is not None and (bug := known_bug(self.version, frame.text)) is not None:
            self.known_bugs[bug] += 1
        elif problem is not None:
            self._wrong(f"{frame.category}: {problem}; frame {frame.text[:160]!r}")

    async def _answer_to(self, message_id: str) -> list | None:
        """The agent's next answer with ``message_id``; earlier answers answered frames that needed none."""
        while True:
            getter = asyncio.ensure_future(self.csms.answers.get())
            dropped = asyncio.ensure_future(self.csms.disconnected.wait())
            done, _ = await asyncio.wait({getter, dropped}, timeout=ANSWER_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            dropped.cancel()
            if getter not in done:
                getter.cancel()
                return None
            answer = getter.result()
            if isinstance(answer, list) and len(answer) > 1 and answer[1] == message_id:
                return answer
            self._wrong(f"answer to a frame that needed none: {str(answer)[:200]}")

    def _wrong(self, text: str) -> None:
        self.wrong_count += 1
        if len(self.wrong) < 20:
            self.wrong.append(text)

    async def finish(self) -> None:
        """Flush stray answers, then a normal session against a well-behaved CSMS, then SIGTERM."""
        await self.exchange(Frame("valid_request", '[2,"final-probe","ClearCache",{}]'))
        while not self.csms.answers.empty():
            self._wrong(f"answer to a frame that needed none: {str(self.csms.answers.get_nowait())[:200]}")
        port = self.csms.port
        await self.csms.stop()
        csms = CsmsSimulator(ocpp_version=self.version, behaviour=CsmsBehaviour(heartbeat_interval=300))
        await csms.start(port=port)
        try:
            try:
                await csms.wait_for_station("CP-FUZZ", timeout=30)  # a reconnection: it resumes, without a boot
                # The socket is up at the CSMS a moment before the agent serves it: a tap in between is an
                # offline tap (an unknown card is refused). An answered request proves the agent is online.
                calls = call16 if self.version == "1.6" else call201
                await csms.call("CP-FUZZ", calls.TriggerMessage(requested_message="Heartbeat"))
                await csms.wait_for_call("Heartbeat", timeout=30)
                await self._normal_session(csms)
            except TimeoutError:
                # Say what the agent did (once seen in CI: a tap taken offline just before the reconnection).
                frames = [(c.action, c.payload) for c in csms.received][-10:]
                raise AssertionError(f"{self.version}: no normal session after the fuzzing; the CSMS got {frames}\n"
                                     f"{self.daemon.log_tail()}") from None
            self.normal_session = True
        finally:
            await csms.stop()
            assert await self.daemon.stop() == 0, self.daemon.log_tail()

    async def _normal_session(self, csms) -> None:
        for command in ({"cmd": "plug", "evse": 1}, {"cmd": "tap", "id_token": "04A1B2C3"},
                        {"cmd": "ev", "evse": 1, "charge": True}, {"cmd": "power", "evse": 1, "watts": 7400}):
            assert (await self.daemon.sim(**command))["ok"]
        start, stop = ("StartTransaction", "StopTransaction") if self.version == "1.6" else ("TransactionEvent",) * 2
        await csms.wait_for_call(start, timeout=30)
        await asyncio.sleep(1.0)
        assert (await self.daemon.sim(cmd="unplug", evse=1))["ok"]
        if self.version == "1.6":
            await csms.wait_for_call(stop, timeout=30)
        else:
            await csms.wait_for(lambda: any(c.payload["eventType"] == "Ended" for c in csms.calls(stop)), timeout=30)

    def _log_figures(self) -> dict:
        lines = self.daemon.log_text().splitlines()
        return {"log_bytes": sum(len(line) + 1 for line in lines),
                "longest_log_line_bytes": max((len(line) for line in lines), default=0)}

    def figures(self, fuzz_seed: int, seconds: float) -> dict:
        """The run as a figure for the report."""
        return {"version": self.version, "frames": sum(self.by_category.values()),
                "by_category": dict(sorted(self.by_category.items())), "answers_expected": self.expected_answers,
                "wrong_answers": self.wrong_count, "process_exits": 0 if self.daemon.running or
                self.daemon.process.returncode == 0 else 1, "connection_drops": self.csms.drops,
                "largest_frame_bytes": self.largest, "normal_session_after": self.normal_session,
                "known_bug_answers": dict(self.known_bugs), **self._log_figures(),
                "seed": fuzz_seed, "seconds": round(seconds, 1), "wrong_examples": self.wrong[:5]}


async def _all(coroutines):
    return await asyncio.gather(*coroutines)


def fuzz(tmp_path, versions: tuple[str, ...], count: int, figures, name: str) -> None:
    """``count`` hostile frames at a real agent per version (the versions side by side), then a normal
    session on each; record and check the figures."""
    fuzz_seed = int(os.environ.get("RELIABILITY_FUZZ_SEED", random.randrange(2**32)))
    benches = [FuzzBench(tmp_path / version, version) for version in versions]
    started = time.monotonic()
    with LoopThread() as loop:
        try:
            loop.run(_all(bench.open() for bench in benches))

            @seed(fuzz_seed)
            @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(frames=st.tuples(*(frames(version) for version in versions)))
            def send(frames):
                loop.run(_all(bench.exchange(frame) for bench, frame in zip(benches, frames)))

            send()
            loop.run(_all(bench.finish() for bench in benches))
        finally:
            for bench in benches:
                if hasattr(bench, "daemon") and bench.daemon.running:
                    loop.run(bench.daemon.stop())
                if hasattr(bench, "daemon"):
                    figures.record("fuzzing", f"{name} {bench.version}",
                                   **bench.figures(fuzz_seed, time.monotonic() - started))
    for bench in benches:
        assert bench.csms.drops == 0, f"{bench.version}: the agent's connection dropped {bench.csms.drops} times"
        assert bench.wrong_count == 0, "\n".join(bench.wrong)
        assert bench.normal_session


def test_fuzzing_smoke_hostile_frames(tmp_path, figures):
    fuzz(tmp_path, ("1.6", "2.0.1"), FUZZ_SMOKE_FRAMES, figures, "smoke")


@pytest.mark.reliability
def test_fuzzing_full(tmp_path, figures):
    fuzz(tmp_path, ("1.6", "2.0.1"), int(full_size("RELIABILITY_FUZZ_FRAMES", 10_000)), figures, "full")


async def _answers_to(tmp_path, version: str, texts: list[str]) -> tuple[list, HostileCsms]:
    """Send ``texts`` one by one to a fresh in-process agent; the answer to each (None if none came)."""
    csms = HostileCsms(version)
    await csms.start()
    answers = []
    try:
        async with running_agent(agent_config(tmp_path, f"ws://127.0.0.1:{csms.port}/ocpp", ocpp_version=version)):
            await wait_until(lambda: "StatusNotification" in csms.calls, timeout=10)
            bench = FuzzBench(tmp_path, version)
            bench.csms = csms
            for text in texts:
                await asyncio.wait_for(csms.connected.wait(), 30)
                await csms.send(text)
                answers.append(await bench._answer_to(expect(text, version).message_id))
            csms.drops_while_sending = csms.drops  # the agent's own close at shutdown is no drop
    finally:
        await csms.stop()
    return answers, csms


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_fuzzing_frame_nested_beyond_the_json_parser_gets_a_callerror(tmp_path, version):
    depth = 100_000
    texts = ["[" * depth + "]" * depth, '[2,"deep","DataTransfer",{"vendorId":"v","data":' + "[" * depth + "]" * depth
             + "}]"]
    answers, csms = await _answers_to(tmp_path, version, texts)
    assert csms.drops_while_sending == 0, f"the connection dropped {csms.drops_while_sending} times"
    for text, answer in zip(texts, answers):
        assert expect(text, version).judge(answer, version) is None, answer


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_fuzzing_negative_composite_schedule_duration_is_not_an_internal_error(tmp_path, version):
    target = {"connectorId": 1} if version == "1.6" else {"evseId": 1}
    answers, _ = await _answers_to(tmp_path, version, [
        json.dumps([2, "neg", "GetCompositeSchedule", {**target, "duration": -1}])])
    assert answers[0][0] == 3 and answers[0][2]["status"] == "Rejected" or (
        answers[0][0] == 4 and answers[0][2] == "PropertyConstraintViolation"), answers[0]


async def test_fuzzing_a_huge_action_name_does_not_flood_the_journal(tmp_path, caplog):
    action = "A" + "x" * 100_000
    answers, _ = await _answers_to(tmp_path, "2.0.1", [json.dumps([2, "huge", action, {}])])
    assert answers[0][:3] == [4, "huge", "NotImplemented"]
    longest = max(len(record.getMessage()) for record in caplog.records if record.name.startswith("agent"))
    assert longest <= 4096, f"a {longest}-character log line"

"""Accepting in turn with sibling processes (app/smtp/accepting.py), in one event loop:
two TakingTurns on one listening socket play two processes."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.smtp import accepting
from app.smtp.accepting import TakingTurns

LOOPBACK = "127.0.0.1"


class Recorder(asyncio.Protocol):
    def __init__(self, accepted: list, name: str):
        self.accepted, self.name = accepted, name

    def connection_made(self, transport):
        self.accepted.append((self.name, time.monotonic()))
        transport.close()


def in_a_loop_of_its_own(main):
    """``asyncio.run(main())`` in a thread of its own: the browser tests' Playwright
    keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, main()).result()


@pytest.fixture
def listening():
    with socket.create_server((LOOPBACK, 0)) as server:
        yield server


def taking_turns(loop, listening, accepted: list, name: str, busy: int,
                 processes: int = 2) -> TakingTurns:
    return TakingTurns(loop, listening.dup(), lambda: Recorder(accepted, name),
                       busy=lambda: busy, processes=processes)


async def connect(listening, accepted: list, count: int) -> None:
    port = listening.getsockname()[1]
    for number in range(count):
        _, writer = await asyncio.open_connection(LOOPBACK, port)
        while len(accepted) <= number:
            await asyncio.sleep(0.001)
        writer.close()


@pytest.mark.parametrize("busy", [1, 4, 100])
def test_the_process_serving_no_session_takes_the_connection(listening, busy, monkeypatch):
    # a step back long enough that no timer comes due while the idle one accepts
    monkeypatch.setattr(accepting, "STEP_BACK", 1.0)
    monkeypatch.setattr(accepting, "LONGEST_STEP_BACK", 1.0)
    accepted: list = []

    async def run():
        loop = asyncio.get_running_loop()
        turns = [taking_turns(loop, listening, accepted, "busy", busy),
                 taking_turns(loop, listening, accepted, "idle", 0)]
        await connect(listening, accepted, 5)
        for each in turns:
            each.close()

    in_a_loop_of_its_own(run)
    assert [name for name, _ in accepted] == ["idle"] * 5


@pytest.mark.parametrize("busy, pause", [(3, 3 * accepting.STEP_BACK),
                                         (100, accepting.LONGEST_STEP_BACK)])
def test_alone_a_busy_process_takes_it_after_stepping_back(listening, busy, pause):
    accepted: list = []

    async def run():
        loop = asyncio.get_running_loop()
        turns = taking_turns(loop, listening, accepted, "busy", busy)
        started = time.monotonic()
        await connect(listening, accepted, 1)
        turns.close()
        return started

    started = in_a_loop_of_its_own(run)
    assert [name for name, _ in accepted] == ["busy"]
    assert accepted[0][1] - started >= pause


def test_a_closed_one_lets_go_of_the_socket(listening):
    async def run():
        turns = taking_turns(asyncio.get_running_loop(), listening, [], "one", 0)
        turns.close()
        turns.close()  # twice: stopping without shutting down closes it again
        return turns

    assert in_a_loop_of_its_own(run).listening.fileno() == -1


def test_accepting_that_fails_is_logged_and_paused_not_spun(listening, caplog):
    accepted: list = []

    async def run():
        loop = asyncio.get_running_loop()
        turns = taking_turns(loop, listening, accepted, "one", 0)
        # a listening socket shut down stays ready, and every accept fails (EINVAL)
        listening.shutdown(socket.SHUT_RDWR)
        await asyncio.sleep(0.3)
        turns.close()

    with caplog.at_level(logging.ERROR, logger="app.smtp.accepting"):
        in_a_loop_of_its_own(run)
    failures = [record for record in caplog.records
                if "cannot accept an SMTP connection" in record.getMessage()]
    assert len(failures) == 1 and "accepting again in 1 s" in failures[0].getMessage()
    assert "the socket failed" in failures[0].getMessage()
    assert accepted == []


class Watched:
    """A listening socket that counts the connections accepted from it, its first
    accepts failing with ``errors``."""

    def __init__(self, listening: socket.socket, errors: list[int] = ()):
        self.listening, self.errors, self.accepted = listening, list(errors), 0

    def accept(self):
        if self.errors:
            raise OSError(self.errors.pop(0), "as the kernel says")
        taken = self.listening.accept()
        self.accepted += 1
        return taken

    def __getattr__(self, name):
        return getattr(self.listening, name)


def on_stepping_back(turns: TakingTurns, note) -> None:
    """Call ``note()`` each time ``turns`` has stepped back, before it accepts."""
    after = turns._after_stepping_back
    turns._after_stepping_back = lambda: (note(), after())


@pytest.mark.parametrize("processes, most", [(1, 3), (2, 12)])  # one a step: 40
def test_a_busy_process_takes_its_share_of_a_flood_after_one_step_back(listening, processes,
                                                                       most):
    """Stepping back before each connection would accept 200 a second at most: after a
    step back it takes what waits divided by the processes."""
    accepted: list = []
    port = listening.getsockname()[1]
    clients = [socket.create_connection((LOOPBACK, port)) for _ in range(40)]

    async def run():
        loop = asyncio.get_running_loop()
        turns = taking_turns(loop, listening, accepted, "busy", 100, processes)
        steps = []
        on_stepping_back(turns, lambda: steps.append(1))
        while len(accepted) < 40:
            await asyncio.sleep(0.001)
        turns.close()
        return len(steps)

    try:
        assert in_a_loop_of_its_own(run) <= most
    finally:
        for client in clients:
            client.close()


def test_a_connection_accepted_counts_as_busy_before_its_session_begins(listening):
    """Its session begins a few turns of the loop later: until then the process would
    take another share at once, as if it served nobody."""
    port = listening.getsockname()[1]
    clients = [socket.create_connection((LOOPBACK, port)) for _ in range(8)]

    async def run():
        loop = asyncio.get_running_loop()
        watched = Watched(listening.dup())
        turns = TakingTurns(loop, watched, lambda: Recorder([], "idle"), busy=lambda: 0,
                            processes=2)
        first_step_back = []
        on_stepping_back(turns, lambda: first_step_back.append(watched.accepted))
        while not first_step_back and watched.accepted < 8:  # bounded: no step back at all
            await asyncio.sleep(0.001)
        turns.close()
        return first_step_back[0] if first_step_back else watched.accepted

    try:
        assert in_a_loop_of_its_own(run) == 4  # its share of 8 for 2 processes, then a step back
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("errors, paused", [
    ([errno.EPROTO, errno.ENETDOWN, errno.EHOSTUNREACH], False),  # the connection's
    ([errno.EMFILE], True), ([errno.ENOBUFS], True),              # out of resources
])
def test_an_error_of_one_connection_is_tried_again_and_no_resources_pause(
        listening, caplog, errors, paused):
    accepted: list = []

    async def run():
        loop = asyncio.get_running_loop()
        turns = TakingTurns(loop, Watched(listening.dup(), errors),
                            lambda: Recorder(accepted, "one"), busy=lambda: 0, processes=1)
        client = socket.create_connection(listening.getsockname())
        await asyncio.sleep(0.3)
        turns.close()
        client.close()

    with caplog.at_level(logging.ERROR, logger="app.smtp.accepting"):
        in_a_loop_of_its_own(run)
    failures = [record.getMessage() for record in caplog.records
                if "cannot accept" in record.getMessage()]
    if paused:
        assert len(failures) == 1 and "no resources left" in failures[0]
        assert accepted == []  # not within the pause
    else:
        assert failures == [] and [name for name, _ in accepted] == ["one"]

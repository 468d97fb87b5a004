"""A real `./jestmesh up` on loopback for the suite: free port, private --state, ready line awaited with a deadline.

`up` runs its own RabbitMQ with data under --state on a port the OS hands out (recorded in
STATE/broker/amqp-port), so it cannot collide with the fixed JESTMESH_AMQP_PORT brokers of other suites.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
REPO = PACKAGE.parent.parent
sys.path.insert(0, str(PACKAGE))
sys.path.insert(0, str(HERE))

#: Against a hang, not a speed check: a fresh clone builds, trains the reference and embeds cold first.
READY_DEADLINE_S = float(os.environ.get("JESTMESH_UP_READY_DEADLINE", 1800))
STOP_DEADLINE_S = 120
JOBS = ("a", "b", "misc")
#: Per job: the suite takes under 150 from any job; without a cap `up` publishes until stopped and its broker
#: keeps every scored super-batch no one took (about 1 MB each, ~1 GB a minute on a quiet machine).
MAX_SUPER_BATCHES = 400
READY = re.compile(r"^ready address=(\S+) api_key=(\S+) jobs=(\S+)$")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UpStack:
    """`./jestmesh up` as a child process; start() waits for its ready line, stop() sends SIGTERM.

    (SIGTERM, not SIGINT: `up` treats both alike, but a shell without job control starts background
    commands with SIGINT ignored, and the suite may run under one.)"""

    def __init__(self, state, port, key, jobs):
        self.state, self.port, self.key, self.jobs = state, port, key, jobs
        self.address = None
        self.process = None
        self.lines = []

    def start(self):
        cmd = [str(REPO / "jestmesh"), "up", "--state", self.state, "--port", str(self.port), "--api-key", self.key,
               "--max-super-batches", str(MAX_SUPER_BATCHES)]
        for job in self.jobs:
            cmd += ["--job", job]
        self.process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        ready = threading.Event()
        process = self.process

        def read():
            for line in process.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                match = READY.match(line)
                if match:
                    self.address = match.group(1)
                    ready.set()
            ready.set()  # exited: wake the waiter

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(READY_DEADLINE_S) or self.address is None:
            self.kill()
            tail = "\n".join(self.lines[-40:])
            pytest.fail(f"`jestmesh up` printed no ready line (exit {process.poll()}):\n{tail}")
        assert self.address == f"127.0.0.1:{self.port}"
        return self

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("`jestmesh up` did not stop within its deadline after SIGTERM:\n" + "\n".join(self.lines[-40:]))
        assert code == 0, "`jestmesh up` exited %s on SIGTERM:\n%s" % (code, "\n".join(self.lines[-40:]))

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="session")
def up():
    state = tempfile.mkdtemp(prefix="jestmesh-pytest-up-")
    stack = UpStack(state, free_port(), "pytest-" + secrets.token_hex(12), JOBS)
    try:
        yield stack.start()
    finally:
        try:
            stack.stop()
        finally:
            stack.kill()
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def client(up):
    import jestmesh

    with jestmesh.CurationClient(up.address, up.key) as c:
        yield c


@contextmanager
def deadline(seconds, what):
    """Fails the test (instead of hanging) when the block takes longer than `seconds`."""

    def expired(signum, frame):
        raise TimeoutError(f"{what}: no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def uninterrupted(up):
    """50 batches of a JEST session on job a, uninterrupted: the reference the other runs compare with."""
    import jestmesh
    from helpers import Recorder

    recorder = Recorder()
    batches = []
    with jestmesh.CurationClient(up.address, up.key) as c, deadline(600, "50 batches on job a"):
        with jestmesh.CuratedBatches(c, "a", score=recorder, steps=50) as stream:
            for batch in stream:
                batches.append(batch)
            state = stream.state_dict()
    return batches, recorder.candidates, state

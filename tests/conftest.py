"""Shared test set-up: the `gpu` marker skips without a real CUDA GPU, seeds are fixed, and
tests marked `simulator(file)` get that file's results under Numba's CUDA simulator."""

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest


def _real_gpu() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _real_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import gpugrad as gg

    gg.manual_seed(0)
    np.random.seed(0)
    yield


# ------------------------------------------------------------ test files run under the simulator
# NUMBA_ENABLE_CUDASIM=1 only takes effect before numba.cuda is first imported, and this process
# keeps the real numba.cuda, so a test marked `simulator("file.py")` runs that file (next to the
# test's own) in a child pytest. The children are started as soon as collection ends, one after
# another on a background thread, and a marked test waits for its child's result: they take
# about three minutes of one core, which the rest of the suite, mostly on one core itself, no
# longer waits for (with the PTX compiled once, kernels/ptx.py, the suite went from 7 min 12 s
# to 3 min 44 s on the 2-core VM).


class _SimulatorChild:
    """One test file run under the simulator in a child pytest, and what came of it."""

    def __init__(self, path: Path, timeout: float):
        self.path, self.timeout = path, timeout
        # Taken now, on the main thread before any test runs: tests change the environment
        # (and could change the directory) while the children start one by one.
        self.env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        self.cwd = os.getcwd()
        self.process = None
        self.returncode = None
        self.stdout = self.stderr = ""
        self.failure = None  # a timeout, or why the child could not run
        self.done = threading.Event()

    def run(self):
        try:
            # Files, not pipes: nobody reads a pipe while the child runs, and a full one
            # would stop it.
            with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
                with _children_lock:  # no child starts once the session has ended
                    if _session_over.is_set():
                        self.failure = "not run: the session ended first"
                        return
                    self.process = subprocess.Popen(
                        [sys.executable, "-m", "pytest", str(self.path), "-q",
                         "-p", "no:cacheprovider"],
                        stdout=out, stderr=err, text=True, env=self.env, cwd=self.cwd,
                    )
                try:
                    self.returncode = self.process.wait(timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
                    self.failure = f"timed out after {self.timeout} s"
                out.seek(0)
                err.seek(0)
                self.stdout, self.stderr = out.read(), err.read()
        except Exception as exc:  # reported by the test that waits for it
            self.failure = f"could not run: {exc!r}"
        finally:
            self.done.set()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


_simulator_children: dict[str, _SimulatorChild] = {}
_children_lock = threading.Lock()
_session_over = threading.Event()


def _child_for(item) -> _SimulatorChild:
    mark = item.get_closest_marker("simulator")
    if mark is None:
        raise TypeError(f"{item.nodeid}: the `simulated` fixture needs a "
                        "@pytest.mark.simulator(file) mark naming the file to run")
    return _SimulatorChild(item.path.parent / mark.args[0], mark.kwargs.get("timeout", 300))


def _run_in_turn(children):
    for child in children:
        child.run()


def _stop_children():
    with _children_lock:
        _session_over.set()
        for child in _simulator_children.values():
            child.stop()


def _on_sigterm(signum, frame):
    # Killed from outside (a CI timeout): take the children along, then die as before.
    _stop_children()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_sessionstart(session):
    _session_over.clear()
    _simulator_children.clear()


def pytest_collection_finish(session):
    option = session.config.option
    if option.collectonly or getattr(option, "setuponly", False) or \
            getattr(option, "setupplan", False):
        return
    children = []
    for item in session.items:
        if item.get_closest_marker("simulator") is not None:
            children.append(_simulator_children.setdefault(item.nodeid, _child_for(item)))
    if children:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            signal.signal(signal.SIGTERM, _on_sigterm)
        threading.Thread(target=_run_in_turn, args=(children,), daemon=True,
                         name="simulator-children").start()


def pytest_sessionfinish(session):
    _stop_children()
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def simulated(request) -> str:
    """The stdout of the child pytest that ran this test's `simulator` file, once it has
    ended; asserts it passed with nothing skipped."""
    child = _simulator_children.get(request.node.nodeid)
    if child is None:  # not started with the others (collected some other way): run it now
        child = _child_for(request.node)
        child.run()
    child.done.wait()
    report = child.stdout[-4000:] + child.stderr[-2000:]
    assert child.failure is None, f"{child.path.name}: {child.failure}\n{report}"
    assert child.returncode == 0, report
    assert " passed" in child.stdout and "skipped" not in child.stdout, report
    return child.stdout

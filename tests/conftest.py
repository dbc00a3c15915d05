"""Test session set-up: the process set-up every entry path does (envs/headless.py), and one Ray
cluster for the whole session (CLI runs join it with --address)."""

import hashlib
import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton kernels run on the CPU: set before triton is imported
# The session's cluster is the tests' own, started here; the CLI subprocesses join it with --address, so
# it runs without Ray's token authentication, and every process started from here inherits that.
os.environ["RAY_AUTH_MODE"] = "disabled"

from envs.headless import configure  # noqa: E402

configure()

import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


SHARED_CLUSTER = "THALAMUS_TEST_RAY_ADDRESS"  # set by `pytest -n N`'s controller for its workers


def _start_cluster() -> str:
    """Start a local Ray cluster, this process its first driver; its GCS address."""
    import ray

    temp = tempfile.mkdtemp(prefix="thr-", dir="/tmp")  # short: unix socket paths are ≤ 107 chars
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 2**20, _temp_dir=temp,
             logging_level=logging.WARNING, log_to_driver=False)
    return ray.get_runtime_context().gcs_address


def pytest_configure(config: pytest.Config) -> None:
    """`pytest -n N`: the controller starts the one cluster its workers share (each worker's own
    would cost its start-up and an idle cluster's CPU for the whole session)."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        os.environ[SHARED_CLUSTER] = _start_cluster()


def pytest_unconfigure(config: pytest.Config) -> None:
    if SHARED_CLUSTER in os.environ and not hasattr(config, "workerinput"):
        import ray

        ray.shutdown()


@pytest.fixture(scope="session")
def ray_address():
    """The session's Ray cluster (started here, or the controller's under `pytest -n N`), joined by
    this process; its GCS address for `--address`."""
    import ray

    address = os.environ.get(SHARED_CLUSTER)
    if address is None:
        address = _start_cluster()
    else:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    yield address
    ray.shutdown()


def run_actor_pid(driver_pid: int, class_name: str, timeout: float = 120) -> int:
    """The pid of the live ``class_name`` actor of the run whose driver (the `thalamus run` process)
    is ``driver_pid``, once there is one: other runs may share the cluster."""
    import ray

    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = {j["JobID"] for j in ray._private.state.jobs() if j["DriverPid"] == driver_pid and not j["IsDead"]}
        for actor in ray._private.state.actors().values():
            if actor["JobID"] in jobs and actor["ActorClassName"] == class_name and actor["State"] == "ALIVE":
                return int(actor["Pid"])
        time.sleep(0.3)
    raise AssertionError(f"no live {class_name} actor of process {driver_pid} within {timeout:.0f} s")


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `thalamus` command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def run_main(capsys: pytest.CaptureFixture, *argv: str) -> subprocess.CompletedProcess:
    """`thalamus ARGV` in this process, for bad input that stops before any work: a subprocess would
    mostly time Python's start-up and our imports (~1 s of CPU each, several seconds on a loaded
    2-core machine). Its exit code and output as `run_cli` gives them; a traceback fails the test."""
    from launch.cli import main

    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(argv), code, out.out, out.err)


def run_here(*argv: str) -> subprocess.CompletedProcess:
    """`thalamus ARGV` in this process (a `run` joins the session's cluster, which this process has
    joined through ``ray_address``): no fresh Python importing torch and Ray for it (~5 CPU-seconds
    each, over a minute of a loaded 2-core machine across the suite). Its exit code and output as
    `run_cli` gives them; a traceback fails the test. torch's thread count is put back after (replay
    and eval play on one thread, as the process they are meant to own)."""
    import contextlib
    import io

    from launch.cli import main

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:
                code = exc.code
    finally:
        if threads is not None:
            torch.set_num_threads(threads)
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def one_clear_line(proc: subprocess.CompletedProcess, expect: str) -> None:
    """A bad input's contract: non-zero exit, no traceback, exactly one stderr line saying ``expect``."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert expect in lines[0], lines[0]


def tree_digest(root: Path) -> str:
    """A digest of every file's path and bytes under ``root``: proves nothing was changed."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def one_line_store_error(call, *args: object, **kwargs: object) -> str:
    """The StoreError ``call`` raises, checked to be one line; returns its message."""
    from memory import StoreError

    with pytest.raises(StoreError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message

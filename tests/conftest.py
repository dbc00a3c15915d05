"""Test session set-up: headless, quiet env vars before anything imports triton/mujoco/ray, and
one Ray cluster for the whole session (CLI runs join it with --address)."""

import hashlib
import os

for _key, _value in (("TRITON_INTERPRET", "1"), ("MUJOCO_GL", "egl"), ("RAY_AUTH_MODE", "disabled"),
                     ("SDL_VIDEODRIVER", "dummy"), ("PYGAME_HIDE_SUPPORT_PROMPT", "1"),
                     ("OPENCV_LOG_LEVEL", "ERROR")):
    os.environ.setdefault(_key, _value)

# triton bundles its own LLVM: loaded after Mesa's llvmpipe (which MuJoCo's EGL rendering pulls in)
# it segfaults, so it is loaded first, before any test renders a frame
import triton  # noqa: E402, F401
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_address():
    """Start the session's Ray cluster and return its GCS address for `--address`."""
    import ray

    temp = tempfile.mkdtemp(prefix="thr-", dir="/tmp")  # short: unix socket paths are ≤ 107 chars
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 2**20, _temp_dir=temp,
             logging_level=logging.WARNING, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `thalamus` command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


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

"""Start a quiet local Ray cluster, or join an existing one (``--address``), with clear errors."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path

import ray
from ray.job_config import JobConfig

from launch.errors import UsageError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # holds agent/, envs/, memory/, kernels/, launch/


def _check_reachable(address: str, timeout_s: float = 3.0) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--address must be 'auto' or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"cannot reach a Ray cluster at {address} ({reason}): start one there with "
            f"`ray start --head --port {port}`, or leave out --address to run locally"
        ) from None


def connect(address: str | None, object_store_mb: int = 256) -> bool:
    """Join the cluster at ``address`` ('auto' or HOST:PORT), or start a local one; True where this
    call made the connection (False: this process had joined that cluster already).

    A local cluster is this command's own: it starts without Ray's token authentication (unless
    RAY_AUTH_MODE says otherwise), which it would otherwise switch on and write ~/.ray/auth_token for.
    Joining leaves authentication to Ray: a cluster that uses tokens needs RAY_AUTH_MODE=token and
    the token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) here too (README, Cluster).
    """
    # Workers import our packages from where they are installed (the package root, below) instead of
    # unpickling each actor class this driver would otherwise export, disassemble and hash first.
    code = JobConfig(code_search_path=[str(PACKAGE_ROOT)])
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False, "job_config": code}
    if address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # read by ray.init; inherited by the cluster's processes
        temp = Path(tempfile.gettempdir()) / f"thalamus-ray-{os.getuid()}"
        ray.init(num_cpus=max(4, os.cpu_count() or 1), include_dashboard=False,
                 object_store_memory=object_store_mb * 2**20, _temp_dir=str(temp), **quiet)
        return True
    if address != "auto":
        _check_reachable(address)
    if ray.is_initialized() and address in ("auto", ray.get_runtime_context().gcs_address):
        return False  # this process has joined that cluster already (a test's worker running the command in-process)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ("" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
                "; a cluster with token authentication needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN")
        raise UsageError(f"cannot join the Ray cluster at --address {address}: {first}{hint}") from None
    return True

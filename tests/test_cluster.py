"""An agent on a real two-node Ray cluster: a head and a second node on loopback, each with its own ports."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import one_clear_line, run_cli
from memory import open_store

RAY = str(Path(sys.executable).with_name("ray"))


RAY_DEFAULT_PORTS = {6379, 8076, 8265, 10001, 52365}  # a node takes these unless told otherwise


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports, none a Ray default (a node would claim it twice)."""
    held: list[socket.socket] = []
    while len(held) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        if s.getsockname()[1] in RAY_DEFAULT_PORTS:
            s.close()
            continue
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


def _node_ports() -> list[str]:
    """Every port a node would otherwise default to, chosen free, so two nodes on one host never collide."""
    names = ["node-manager", "object-manager", "dashboard-agent-listen", "dashboard-agent-grpc",
             "runtime-env-agent", "metrics-export"]
    return [f"--{name}-port={port}" for name, port in zip(names, _free_ports(len(names)))]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    # no 30 s drain on SIGTERM at teardown: the test's run has ended, nothing is left to drain
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    return subprocess.Popen([RAY, "start", "--block", "--num-cpus=2", "--object-store-memory=134217728", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _alive_nodes(address: str) -> list[dict]:
    """The cluster's live nodes as ``{"id", "resources"}`` ([] while it cannot be reached)."""
    code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(json.dumps([{'id': n['NodeID'], 'resources': n['Resources']} for n in ray.nodes() if n['Alive']]))"
            % address)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else []


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """A head and a second node that advertises the custom resource ``robot`` (the robot's computer):
    the cluster's address and the robot node's id."""
    tmp_path = tmp_path_factory.mktemp("two-nodes")
    port = _free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    temp = Path("/tmp") / f"thalamus-2n-{os.getpid()}"
    procs = [_start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
                     *_node_ports()], tmp_path / "head.log")]
    try:
        deadline = time.time() + 60
        while not _listening(port) and time.time() < deadline:  # the head's GCS takes connections
            time.sleep(0.5)
        procs.append(_start([f"--address={address}", *_node_ports(), '--resources={"robot": 1}'],
                            tmp_path / "worker.log"))
        nodes: list[dict] = []
        while len(nodes) < 2 and time.time() < deadline:  # a Python process joining the cluster: seconds of CPU each
            time.sleep(2)
            nodes = _alive_nodes(address)
        assert len(nodes) == 2, (tmp_path / "worker.log").read_text()[-2000:]
        yield address, next(n["id"] for n in nodes if n["resources"].get("robot"))
    finally:
        for proc in procs:  # `ray start --block` stops its node's processes on SIGTERM: both at once
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)


def test_an_agent_spans_both_nodes_with_its_env_on_the_robots_node_and_records_every_step(two_nodes, tmp_path):
    address, robot_node = two_nodes
    run_dir = tmp_path / "run"
    proc = run_cli("run", "--address", address, "--env-resources", "robot=1", "--steps", "600", "--num-envs", "2",
                   "--captioner", "off", "--run-dir", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    placement = {name: where.split("/")[1] for name, where in summary["placement"].items()}
    assert placement["env"] == robot_node[:8], placement  # the env actor went where the robot is
    assert placement["recorder"] == placement["learner"] != robot_node[:8]  # both write the driver's run store
    assert summary["transport"] == "actor"  # across nodes, the portable transport
    assert open_store(run_dir).n_steps == summary["steps"] == 600


def test_a_resource_no_node_advertises_is_one_clear_line(two_nodes, tmp_path):
    one_clear_line(run_cli("run", "--address", two_nodes[0], "--env-resources", "gripper=1", "--steps", "64",
                           "--run-dir", str(tmp_path / "run")), "no node of the cluster advertises it")
    assert not (tmp_path / "run").exists()

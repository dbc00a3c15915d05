"""Process set-up on every entry path: headless defaults and triton before MuJoCo (envs/headless.py),
and Ray's authentication switched off only for the local cluster a command starts itself."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from envs.headless import HEADLESS_DEFAULTS, configure

ROOT = Path(__file__).parents[1]
SET_UP = [key for key, _ in HEADLESS_DEFAULTS] + ["RAY_AUTH_MODE"]

# Runs CODE in a fresh interpreter, recording the order modules load in, then prints what it saw.
_PROBE = """
import json, os, sys
loaded = []
class Recorder:
    def find_spec(self, name, path=None, target=None):
        loaded.append(name)
sys.meta_path.insert(0, Recorder())
{code}
print(json.dumps({{"env": {{k: os.environ.get(k) for k in {keys!r}}}, "loaded": loaded}}))
"""


def _fresh(code: str) -> dict:
    """What a new process with none of the set-up variables does on ``code``: its env and import order."""
    env = {k: v for k, v in os.environ.items() if k not in SET_UP}
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(code=code, keys=SET_UP)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", ["import launch.cli", "import envs", "import agent.env_actor"])
def test_every_entry_path_is_headless_and_loads_triton_before_cv2_and_mujoco(code):
    seen = _fresh(code + "\nimport envs\nenvs.make('InvertedPendulum-v5', frame_size=16).reset()")
    env = seen["env"]
    assert env.pop("PYGAME_HIDE_SUPPORT_PROMPT")  # any value hides pygame's banner (gymnasium sets "hide")
    assert {k: env[k] for k, _ in HEADLESS_DEFAULTS if k in env} == {
        k: v for k, v in HEADLESS_DEFAULTS if k != "PYGAME_HIDE_SUPPORT_PROMPT"}
    loaded = seen["loaded"]
    assert "triton" in loaded and "mujoco" in loaded and "cv2" in loaded
    assert loaded.index("triton") < loaded.index("cv2") < loaded.index("mujoco")


def test_configure_keeps_what_the_user_set_and_can_run_twice(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    configure()
    configure()
    assert os.environ["MUJOCO_GL"] == "osmesa" and os.environ["SDL_VIDEODRIVER"] == "dummy"


def test_the_cli_leaves_ray_authentication_alone_until_it_starts_a_cluster():
    assert _fresh("import launch.cli")["env"]["RAY_AUTH_MODE"] is None


@pytest.fixture()
def ray_init_sees(monkeypatch):
    """Replaces ray.init: records the RAY_AUTH_MODE and arguments each call sees."""
    import ray

    calls: list[tuple[str | None, dict]] = []
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append((os.environ.get("RAY_AUTH_MODE"), kw)))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    return calls


def test_a_local_cluster_starts_without_authentication(ray_init_sees):
    from launch import ray_session

    ray_session.connect(None)
    [(mode, kwargs)] = ray_init_sees
    assert mode == "disabled" and "address" not in kwargs


@pytest.mark.parametrize("mode", [None, "token"])
def test_joining_a_cluster_leaves_authentication_to_the_user(ray_init_sees, monkeypatch, mode):
    """With --address, Ray's own rules apply: RAY_AUTH_MODE=token (and a token) for a cluster that
    uses token authentication, nothing for one that does not."""
    from launch import ray_session

    if mode is not None:
        monkeypatch.setenv("RAY_AUTH_MODE", mode)
    with socket.socket() as listener:  # something to reach at the address
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = "%s:%d" % listener.getsockname()
        ray_session.connect(address)
    [(seen, kwargs)] = ray_init_sees
    assert seen == mode and kwargs["address"] == address


def test_a_failed_join_says_how_to_join_a_cluster_with_tokens(ray_init_sees, monkeypatch):
    import ray

    from launch import ray_session
    from launch.errors import UsageError

    def refused(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:1")

    monkeypatch.setattr(ray, "init", refused)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(UsageError, match="needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN"):
            ray_session.connect("%s:%d" % listener.getsockname())


_FAULTS = """
import os, resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from agent.processes import keep_freed_memory
    keep_freed_memory()
def call(i):  # a few MBs at once, their sizes changing from call to call, as a captioner's tensors do
    return [np.ones(mb << 20, np.uint8) for mb in (1 + i % 7, 1 + 3 * i % 5, 2 + i % 3)]
for i in range(30):
    call(i)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(200):
    call(i)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, os.environ.get("MALLOC_TRIM_THRESHOLD_"))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator")
def test_keeping_freed_memory_stops_the_page_faults_of_changing_sizes_and_keeps_a_users_setting():
    def run(mode: str, **env: str) -> tuple[int, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True,
                             cwd=ROOT, env={**clean, "PYTHONPATH": str(ROOT), **env}).stdout.split()
        return int(out[0]), out[1]

    (plain, _), (kept, trim) = run("plain"), run("keep")
    assert plain > 20_000 and kept < plain / 10, (plain, kept)  # each array faulted in afresh, or reused
    assert trim == "1073741824"
    assert run("keep", MALLOC_TRIM_THRESHOLD_="4096")[1] == "4096"

"""Camera to action: a paced camera source feeding perception and policy actors, timed per frame.

The latency of a frame is from the moment its reader thread had it (``Frame.captured``) to the moment
the policy's action for it is back in the driver, through the agent's pipes (``ours``), a Ray
Compiled Graph (``compiled``) or plain actor calls (``actor_call``). Frames the loop could not keep
up with are dropped by the source and counted, so a slow loop shows as drops, not as an ever-growing
latency.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agent.messages import Observation, encode
from agent.perception.actor import PerceptionActor
from agent.perception.encoder import PerceptionConfig
from agent.pipes import PipeRing, on_ray_actors
from agent.policy.actor import PolicyActor
from agent.policy.ppo import PPOConfig
from envs.sources import open_source

TRANSPORTS = ("ours", "compiled", "actor_call")


def camera_to_action(seconds: float = 10.0, fps: float = 30.0, frame_size: int = 64, transport: str = "ours",
                     seed: int = 0, timeout_s: float = 30.0) -> dict[str, float]:
    """p50/p99 camera-to-action latency (ms) over ``seconds`` of a ``fps`` synthetic camera."""
    import ray
    from ray.dag import InputNode

    cfg = PerceptionConfig()
    spec = {"discrete": True, "action_dim": 2}
    perception = ray.remote(num_cpus=0)(PerceptionActor).remote(1, cfg, seed)
    policy = ray.remote(num_cpus=0)(PolicyActor).remote(1 + cfg.frame_features, spec, 1,
                                                         PPOConfig.for_actions(True), None, seed)
    ray.get([perception.stats.remote(), policy.stats.remote()], timeout=timeout_s)  # started before the clock
    graph: Any = None
    if transport == "compiled":
        with InputNode() as inp:
            graph = policy.act.bind(perception.encode.bind(inp)).experimental_compile()
    elif transport == "ours":
        graph = PipeRing.around([(perception, "encode"), (policy, "act")], on_ray_actors(timeout_s), timeout_s)

    def act(obs: bytes) -> bytes:
        if transport == "ours":
            return graph.execute(obs)
        if transport == "compiled":
            return graph.execute(obs).get(timeout=timeout_s)
        return ray.get(policy.act.remote(perception.encode.remote(obs)), timeout=timeout_s)

    source = open_source("synthetic", frame_size=frame_size, seed=seed, fps=fps, realtime=True)
    latencies, n = [], 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            frame = source.get()
            obs = encode(Observation(step=n, state=np.zeros((1, 1), np.float32), frame=frame.rgb[None],
                                     reward=np.zeros(1, np.float32), terminated=np.zeros(1, bool),
                                     truncated=np.zeros(1, bool)))
            act(obs)
            if n >= 10:  # the first frames warm up the models
                latencies.append(time.monotonic() - frame.captured)
            n += 1
    finally:
        source.close()
        if graph is not None:
            graph.teardown()
        for actor in (perception, policy):
            ray.kill(actor)
    ms = np.asarray(latencies) * 1000
    slow = np.flatnonzero(ms > 1000 / fps)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "frames": n, "dropped": source.dropped, "fps": fps, "late_frames": int(len(slow)),
            "late_at": (slow + 10).tolist()[:20]}  # which frames (the first 20) missed 1 / fps

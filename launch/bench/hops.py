"""One-hop latency of each way a message can go from one actor to the next, for the pipeline benchmark.

A hop is a message from a sender to a receiver that reads it. Each transport moves the same msgpack
payloads (``small``: a 64-byte action-sized message; ``frame64``: a 64×64 RGB frame; ``frame480``: a
640×480 RGB frame) through a chain of two echo actors, driver → A → B → driver, and a hop's time is
the round trip divided by the three hops it took:

- ``ours``: the agent's hot-path transport, named pipes between the actors' loop threads (agent/pipes.py);
- ``compiled``: a Ray Compiled Graph (shared-memory channels between co-located processes, busy-polled);
- ``actor_call``: plain Ray actor calls, each ObjectRef handed to the next actor;
- ``queue``: ``ray.util.queue.Queue`` between the driver and an actor that echoes back;
- ``inprocess``: the same decode and a function call, no process boundary.

Every receiver decodes the message (as the actors do), so a hop includes that cost everywhere.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from agent.pipes import PipeRing, on_ray_actors

PAYLOADS: dict[str, tuple[int, ...]] = {"small": (64,), "frame64": (64, 64, 3), "frame480": (480, 640, 3)}


class Echo:
    """The receiving end of a hop: decodes the message, as every actor does, and passes it on."""

    def echo(self, payload: bytes) -> bytes:
        from agent.messages import Observation, decode

        decode(payload, Observation)
        return payload

    def echo_queue(self, inbox: Any, outbox: Any, n: int, timeout_s: float) -> None:
        for _ in range(n):
            outbox.put(inbox.get(timeout=timeout_s), timeout=timeout_s)


def _payload(shape: tuple[int, ...]) -> bytes:
    from agent.messages import Observation, encode

    frame = np.random.default_rng(0).integers(0, 255, size=shape, dtype=np.uint8)
    return encode(Observation(step=1, frame=frame if len(shape) == 3 else np.zeros((0, 0, 0, 3), np.uint8),
                              state=frame.reshape(1, -1).astype(np.float32)[:, :16] if len(shape) == 1
                              else np.zeros((1, 4), np.float32)))


def _time(round_trip: Callable[[bytes], Any], payload: bytes, n: int, hops: int) -> dict[str, float]:
    for _ in range(10):  # warm up
        round_trip(payload)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        round_trip(payload)
        times.append((time.perf_counter() - t0) / hops)
    ms = np.asarray(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "count": n}


def measure_hops(n: int = 300, timeout_s: float = 30.0) -> dict[str, dict[str, float]]:
    """``{"TRANSPORT/PAYLOAD": {"p50_ms", "p99_ms", "count"}}`` for every transport and payload."""
    import ray
    from ray.dag import InputNode
    from ray.util.queue import Queue

    remote = ray.remote(num_cpus=0)(Echo)
    a, b = remote.remote(), remote.remote()
    ray.get([a.echo.remote(_payload((64,))), b.echo.remote(_payload((64,)))], timeout=timeout_s)
    with InputNode() as inp:
        graph = b.echo.bind(a.echo.bind(inp)).experimental_compile()
    local = Echo()
    out: dict[str, dict[str, float]] = {}
    try:
        for name, shape in PAYLOADS.items():
            payload = _payload(shape)
            out[f"inprocess/{name}"] = _time(lambda p: local.echo(local.echo(p)), payload, n, 2)
            out[f"compiled/{name}"] = _time(lambda p: graph.execute(p).get(timeout=timeout_s), payload, n, 3)
        graph.teardown()
        ring = PipeRing.around([(a, "echo"), (b, "echo")], on_ray_actors(timeout_s), timeout_s)
        for name, shape in PAYLOADS.items():
            out[f"ours/{name}"] = _time(ring.execute, _payload(shape), n, 3)
        ring.teardown()
        for name, shape in PAYLOADS.items():
            payload = _payload(shape)
            out[f"actor_call/{name}"] = _time(
                lambda p: ray.get(b.echo.remote(a.echo.remote(p)), timeout=timeout_s), payload, n, 3)
            inbox, outbox = Queue(maxsize=4), Queue(maxsize=4)
            done = a.echo_queue.remote(inbox, outbox, n + 10, timeout_s)

            def via_queue(p: bytes) -> bytes:
                inbox.put(p, timeout=timeout_s)
                return outbox.get(timeout=timeout_s)

            out[f"queue/{name}"] = _time(via_queue, payload, n, 2)
            ray.get(done, timeout=timeout_s)
            for q in (inbox, outbox):
                q.shutdown()
    finally:
        for actor in (a, b):
            ray.kill(actor)
    return out

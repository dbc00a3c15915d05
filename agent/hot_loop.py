"""The hot loop: the EnvActor's ring env → perception → policy → env, clocked by itself.

    obs = env.first_observation()
    while the budget lasts:
        action = transport.round_trip(obs)     # perception.encode, then policy.act (agent/transport.py)
        obs = env.step(action)                 # finished episodes go to the recorder from here

No frame passes through the driver: it starts the ring with a budget (env steps and/or episodes),
then only watches ``status`` and may ``pause`` it (a checkpoint of one moment is taken while the
ring holds between two steps), ``go_on``, or ``stop`` it (Ctrl-C). When a perception or policy
process dies, the ring stops as ``broken`` keeping the observation it had not acted on yet; the
driver brings the actors back (agent/recovery.py) and starts the ring again, which goes on from
that observation. The budget counts whole batches: a budget of N steps ends at the first multiple
of ``num_envs`` at or above N.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.channels import ChannelTimeout
from agent.transport import Link, PeerDied, StageError, Transport, open_transport

if TYPE_CHECKING:
    from agent.env_actor import EnvActor


@dataclass(frozen=True)
class RingBudget:
    """Where the ring stops: at ``steps`` env steps in all (None: no limit), or once the env has
    counted its episode budget."""

    steps: int | None


class HotLoop:
    """The ring's control: started by the driver, run on the env thread, watched through ``status``."""

    def __init__(self, env: EnvActor) -> None:
        self.env = env
        self.state, self.error = "idle", None  # idle | running | paused | done | broken | failed
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._paused = threading.Event()
        self._ended = threading.Event()
        self._ended.set()
        self.transport_name: str | None = None

    def start(self, budget: RingBudget, link: Link, thread: Executor) -> None:
        """Run ``_run`` on ``thread`` over ``link`` (laid afresh by the driver for every start)."""
        if not self._ended.is_set():
            raise RuntimeError("the ring is already running")
        self._stop.clear()
        self._resume.set()
        self._paused.clear()
        self._ended.clear()
        self.state, self.error = "running", None
        thread.submit(self._run, budget, link)

    def _run(self, budget: RingBudget, link: Link) -> None:
        """The loop itself, on the env thread."""
        env = self.env
        transport: Transport | None = None
        try:
            transport = open_transport(link)
            self.transport_name = transport.name
            obs = env.first_observation()
            while not self._stop.is_set():
                if (budget.steps is not None and env.steps >= budget.steps) or env.episode_budget_spent():
                    break
                if not self._resume.is_set():  # the driver holds the ring between two steps
                    self._paused.set()
                    self._resume.wait()
                    self._paused.clear()
                    continue
                action = transport.round_trip(obs)
                obs = env.step(action)
            self.state = "done"
        except PeerDied as exc:
            self.state, self.error = "broken", str(exc)
        except StageError as exc:
            self.state, self.error = "failed", f"perception or the policy failed: {exc}"
        except ChannelTimeout as exc:
            self.state, self.error = "failed", str(exc)
        except Exception as exc:  # an env or the recorder raised: the run stops, saying which
            self.state, self.error = "failed", f"the env actor failed: {type(exc).__name__}: {exc}"
        finally:
            if transport is not None:
                transport.close()
            self._ended.set()
            self._paused.set()  # a pause waiting on a ring that ended returns

    def pause(self) -> bool:
        """Hold the ring before its next step and wait until it does; False if it is not running."""
        if self._ended.is_set():
            return False
        self._resume.clear()
        self._paused.wait()
        return not self._ended.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the ring to end; whether it has."""
        return self._ended.wait(timeout_s)

    def go_on(self) -> None:
        self._resume.set()

    def stop(self) -> dict[str, Any]:
        """Stop after the step in flight and wait for the ring to end."""
        self._stop.set()
        self._resume.set()
        self._ended.wait()
        return self.status()

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "error": self.error, "transport": self.transport_name}

"""The recorder in one process: episodes and their captions arrive on different threads (the env's
and the caption thread's), and every episode is still committed once, with its captions."""

import sys
import threading

import numpy as np

from agent.messages import Captions, Episode, encode
from agent.recorder import RecorderActor, store_specs
from memory import open_store

SPEC = {"state_dim": 2, "frame_shape": (4, 4, 3), "action_shape": (), "discrete": True}
ENVS, STEPS, LENGTH, CAPTION = 4, 400, 5, 3  # every env ends an episode every 5 batch steps


def _episode(env: int, first: int) -> bytes:
    rows = np.arange(first, first + LENGTH)
    data = {"obs": np.zeros((LENGTH, 2), np.float32), "frame": np.zeros((LENGTH, 4, 4, 3), np.uint8),
            "action": np.zeros(LENGTH, np.int64), "reward": np.ones(LENGTH, np.float32),
            "terminated": rows == rows[-1], "truncated": np.zeros(LENGTH, bool), "task": np.zeros(LENGTH, np.int32),
            "time": rows.astype(np.float64), "step": rows, "stopped": np.zeros(LENGTH, bool)}
    return encode(Episode(env_index=env, data=data))


def test_episodes_and_captions_from_two_threads_are_all_committed_once(tmp_path):
    recorder = RecorderActor(str(tmp_path), store_specs(SPEC, CAPTION))

    def episodes() -> None:
        for first in range(0, STEPS, LENGTH):
            for env in range(ENVS):
                recorder.add(_episode(env, first))

    def captions() -> None:
        for first in range(0, STEPS, 2):  # two batch steps a message, as one captioning call sends them
            steps = np.arange(first, first + 2)
            tokens = np.broadcast_to((steps[:, None, None] % 100).astype(np.int16), (2, ENVS, CAPTION)).copy()
            recorder.add_captions(encode(Captions(steps=steps, tokens=tokens, lags=np.zeros(2, np.int64),
                                                  skipped=np.zeros(2, bool))))

    threads = [threading.Thread(target=episodes), threading.Thread(target=captions)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns as often as Python allows: races show up
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    stats = recorder.close()
    assert stats["steps_committed"] == ENVS * STEPS and stats["captions_missing"] == 0
    store = open_store(tmp_path)
    rows = [store.get_episode(i) for i in range(store.n_episodes)]
    keys = sorted((int(ep["env"][0]), int(ep["step"][0])) for ep in rows)
    assert keys == sorted((env, first) for env in range(ENVS) for first in range(0, STEPS, LENGTH))
    assert all((ep["caption"][:, 0] == ep["step"] % 100).all() for ep in rows)

import dataclasses

import msgpack
import numpy as np
import pytest

from agent.messages import (SCHEMA_VERSION, Action, Captions, Episode, MessageError, Observation, Percept, decode,
                            encode)


def test_round_trip_keeps_arrays_dtypes_and_shapes():
    obs = Observation(step=7, state=np.arange(12, dtype=np.float32).reshape(3, 4),
                      frame=np.random.default_rng(0).integers(0, 255, (3, 5, 6, 3), dtype=np.uint8),
                      reward=np.array([1.0, 0.5, -2.0], np.float32), terminated=np.array([True, False, False]),
                      truncated=np.array([False, False, True]))
    back = decode(encode(obs), Observation)
    assert back.step == 7 and back.sent_ns == obs.sent_ns > 0
    for name in ("state", "frame", "reward", "terminated", "truncated"):
        a, b = getattr(obs, name), getattr(back, name)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def test_episode_map_of_arrays_round_trips():
    ep = Episode(env_index=2, task=1, data={"reward": np.ones(4, np.float32), "action": np.arange(4)})
    back = decode(encode(ep), Episode)
    assert back.env_index == 2 and back.task == 1
    assert np.array_equal(back.data["action"], np.arange(4))


def _body(msg) -> dict:
    return msgpack.unpackb(encode(msg), raw=False, ext_hook=lambda c, d: msgpack.ExtType(c, d))


def _pack(body: dict) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def test_decode_names_the_bad_field():
    body = _body(Action(step=1, action=np.zeros(2, np.int64)))
    body["step"] = "one"
    with pytest.raises(MessageError, match=r"action\.step: expected an int, got str"):
        decode(_pack(body))
    del body["step"]
    with pytest.raises(MessageError, match=r"action\.step: missing field"):
        decode(_pack(body))


def test_newer_schema_and_wrong_kind_are_refused():
    body = _body(Percept(step=1, vector=np.zeros((1, 2), np.float32), reward=np.zeros(1, np.float32),
                         done=np.zeros(1, bool)))
    body["v"] = SCHEMA_VERSION + 1
    with pytest.raises(MessageError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        decode(_pack(body))
    with pytest.raises(MessageError, match="expected a observation message, got action"):
        decode(encode(Action(step=0, action=np.zeros(1, np.int64))), Observation)


def test_garbage_is_refused_not_crashed():
    with pytest.raises(MessageError, match="not a thalamus message"):
        decode(b"\xc1\xff garbage")
    with pytest.raises(MessageError, match="unknown message kind"):
        decode(_pack({"kind": "nope", "v": 1}))


def test_captions_travel_on_their_own_and_actions_carry_the_action_only():
    tokens = np.arange(24, dtype=np.int16).reshape(2, 3, 4)  # two steps of three envs
    back = decode(encode(Captions(steps=np.array([7, 8]), tokens=tokens, lags=np.array([1, 0]),
                                  skipped=np.array([True, False]))), Captions)
    assert back.steps.tolist() == [7, 8] and np.array_equal(back.tokens, tokens)
    assert back.lags.tolist() == [1, 0] and back.skipped.tolist() == [True, False]
    assert [f.name for f in dataclasses.fields(Action)] == ["sent_ns", "step", "action"]

"""The Rerun viewer: a live run's recording read back with Rerun's own reader, a stored run's picture
in the web viewer as headless Chromium renders it, and the viewer's bad input. The watched run is a
captioned task sequence, so `thalamus replay` on captioner features is tested on it too (a run less
to pay for)."""

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from browser import find_chromium, screenshot_when
from conftest import one_clear_line, run_here, run_main
from memory import caption_decoder, open_store, read_manifest


@pytest.fixture(scope="module")
def viewed_run(ray_address, tmp_path_factory):
    """A captioned cartpole-physics run (the shipped CartPole captioner, ``--captioner auto``) watched
    with ``--view save:`` at every frame: its dir, recording and summary."""
    base = tmp_path_factory.mktemp("view")
    run_dir, rrd = base / "run", base / "run.rrd"
    proc = run_here("run", "--tasks", "cartpole-physics", "--steps", "160", "--num-envs", "2", "--view",
                   f"save:{rrd}", "--view-fps", "0", "--run-dir", str(run_dir), "--address", ray_address, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["view"]["path"] == str(rrd) and summary["view"]["episodes_dropped"] == 0
    return run_dir, rrd, summary


def _recording(path: Path) -> dict[str, dict[int, list]]:
    """Every logged entity → step → the values logged there, read with Rerun's own reader."""
    from rerun.chunk import RrdReader

    out: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for chunk in RrdReader(path).store().stream():
        table = chunk.to_record_batch().to_pydict()
        if "step" not in table:
            continue
        value = next(k for k in table if k not in ("step", "rerun.controls.RowId") and not k.endswith("media_type"))
        for step, v in zip(table["step"], table[value]):
            out[chunk.entity_path][step].append(v)
    return out


def test_a_viewed_run_records_every_envs_frames_captions_rewards_and_task_boundaries(viewed_run):
    run_dir, rrd, summary = viewed_run
    rec = _recording(rrd)
    store = open_store(run_dir)
    decode, _ = caption_decoder(read_manifest(run_dir)["caption_vocab"])
    rows = {key: store.column(key) for key in ("env", "step", "reward", "task", "caption")}
    assert summary["view"]["episodes_viewed"] == store.n_episodes
    for env in (0, 1):
        mine = rows["env"] == env
        steps = rows["step"][mine]
        assert sorted(rec[f"/env{env}/camera"]) == sorted(steps.tolist())  # --view-fps 0: every frame
        reward = rec[f"/env{env}/reward"]
        assert [reward[s][0][0] for s in steps] == rows["reward"][mine].tolist()
        texts = [decode(t) for t in rows["caption"][mine]]
        changes = [s for i, s in enumerate(steps.tolist()) if i == 0 or texts[i] != texts[i - 1]]
        assert sorted(rec[f"/env{env}/caption"]) == changes
        assert [rec[f"/env{env}/caption"][s][0][0] for s in changes] == [texts[steps.tolist().index(s)]
                                                                          for s in changes]
    boundaries = {int(rows["step"][rows["task"] == t].min()): t for t in range(4)}
    logged = {step: texts[0][0] for step, texts in rec["/run/task"].items()}
    assert sorted(logged) == sorted(boundaries)
    names = summary["task_names"]
    assert all(logged[s] == f"task {t}: {names[t]}" for s, t in boundaries.items())
    assert rec["/run/steps_per_s"]  # the driver's counters came too


def test_view_saves_a_stored_run_and_the_web_viewer_shows_its_cameras(viewed_run, tmp_path):
    """`thalamus view --save` gives the stored picture; `--web` serves it, and headless Chromium
    renders the cameras (the first panel, top left) with the run's own frame colours."""
    run_dir, _, _ = viewed_run
    saved = tmp_path / "stored.rrd"
    proc = run_here("view", str(run_dir), "--save", str(saved), "--episodes", "0-2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["episodes"] == 3
    stored = open_store(run_dir)
    first = stored.get_episode(0)
    rec = _recording(saved)
    assert len(rec[f"/env{first['env'][0]}/camera"]) >= 1 and "/run/task" in rec
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium on PATH to render the web viewer (apt-get install chromium)")
    import cv2

    assert _coloured(first["frame"]).mean() > 0.002  # the frames have colour to look for (the pole)
    server = subprocess.Popen([sys.executable, "-m", "launch.cli", "view", str(run_dir), "--web", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = json.loads(server.stdout.readline())["url"]
        assert url.startswith("http://127.0.0.1:")

        def cameras_drawn(png: bytes) -> bool:
            shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            h, w = shot.shape[:2]
            panel = shot[int(0.08 * h):int(0.6 * h), : int(0.3 * w)]  # env 0's camera, top left
            return int(_coloured(panel).sum()) >= 50  # grey UI and a loading spinner have none

        png, shown = screenshot_when(url, cameras_drawn, timeout_s=150)
    finally:
        server.terminate()
        server.wait(timeout=30)
    (tmp_path / "web-viewer.png").write_bytes(png)  # beside the test's output, to look at
    assert shown, f"the camera panel stayed blank: see {tmp_path / 'web-viewer.png'}"


def _coloured(pixels: np.ndarray) -> np.ndarray:
    """Which pixels are coloured (channels ≥ 40 apart): the viewer's own chrome is grey and white."""
    p = pixels.reshape(-1, 3).astype(int)
    return (p.max(axis=1) - p.min(axis=1)) >= 40


def test_replay_of_a_captioned_run_plays_on_the_captioners_features(viewed_run, tmp_path):
    run_dir, _, summary = viewed_run
    assert Path(summary["captioner"]).name == "captioner-cartpole.pt"
    proc = run_here("replay", str(run_dir), "--episodes", "1", "--max-steps", "8", "--json", str(tmp_path / "r.json"),
                   "--png", str(tmp_path / "r.png"))
    assert proc.returncode == 0, proc.stderr
    r = np.asarray(json.loads((tmp_path / "r.json").read_text())["matrix"])
    assert r.shape == (4, 4) and ((r >= 1) & (r <= 8)).all()


@pytest.mark.parametrize("argv, expect", [
    (["run", "--view", "browser"], "--view browser: give native, web or save:PATH.rrd"),
    (["run", "--view", "save:run.txt"], "a recording is an .rrd file"),
    (["run", "--view", "save:/no/such/dir/run.rrd"], "no directory '/no/such/dir'"),
    (["run", "--view", "web", "--view-fps", "-1"], "--view-fps must be 0 or more"),
    (["view", "/no/such/run"], "no run at '/no/such/run'"),
    (["view", "/tmp", "--save", "out.txt"], "--save out.txt: a recording is an .rrd file"),
    (["view", "/tmp", "--fps", "-2"], "--fps must be 0 or more"),
])
def test_bad_view_input_is_one_clear_line(argv, expect, capsys):
    one_clear_line(run_main(capsys, *argv), expect)


def test_without_rerun_the_viewer_says_how_to_get_it(tmp_path):
    """A Python where ``import rerun`` fails: `--view` and `thalamus view` say what to install."""
    hide = tmp_path / "rerun.py"
    hide.write_text("raise ImportError('hidden for this test')\n")
    for argv in (["run", "--view", "web", "--steps", "8"], ["view", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "launch.cli", *argv], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
        one_clear_line(proc, "pip install 'thalamus[view]'")

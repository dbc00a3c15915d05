"""The `thalamus` command line, run for real in subprocesses that join the session's Ray cluster."""

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import one_clear_line, run_here, run_main, tree_digest
from memory import open_store


@pytest.fixture(scope="module")
def cartpole_run(ray_address, tmp_path_factory):
    """One short CartPole run shared by the tests that read its outputs."""
    run_dir = tmp_path_factory.mktemp("runs") / "cartpole"
    proc = run_here("run", "--env", "CartPole-v1", "--steps", "800", "--num-envs", "4", "--seed", "3",
                   "--run-dir", str(run_dir), "--address", ray_address, "--json")
    assert proc.returncode == 0, proc.stderr
    return run_dir, json.loads(proc.stdout)


def test_run_prints_a_json_summary(cartpole_run):
    run_dir, summary = cartpole_run
    assert summary["steps"] == 800 and summary["run_dir"] == str(run_dir)
    assert summary["transport"] == "pipes" and summary["restarts"] == 0  # one node: the hot path is pipes
    assert summary["episodes"] > 10 and summary["steps_per_s"] > 0
    assert 8 <= summary["mean_return_last20"] <= 500
    for hop in ("env→perception", "perception→policy", "policy→env", "env→recorder"):
        assert summary["latency_ms"][hop]["count"] > 0
        assert 0 < summary["latency_ms"][hop]["p50_ms"] <= summary["latency_ms"][hop]["p99_ms"]
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "completed" and manifest["config"]["env_id"] == "CartPole-v1"
    assert (run_dir / "checkpoints" / "final.pt").stat().st_size > 0


def test_run_captions_every_step_in_an_actor_of_its_own(cartpole_run):
    """CartPole's shipped captioner is on by default: every step's frames go from perception to the
    CaptionActor and every step's captions from it to the store (a message per captioning call), none
    lost, each with its lag."""
    run_dir, summary = cartpole_run
    channels = {c["name"]: c for c in summary["channels"]}
    to_captioner, to_recorder = channels["perception→captioner"], channels["captioner→recorder"]
    assert to_captioner["put"] == to_captioner["got"] == 200 and to_captioner["lost"] == 0
    assert 0 < to_recorder["put"] == to_recorder["got"] <= 200 and to_recorder["lost"] == 0
    assert summary["captions_missing"] == 0 and summary["caption_lag_steps"]["count"] == 200
    store = open_store(run_dir)
    lags = np.concatenate([store.get_episode(i)["caption_lag"] for i in range(store.n_episodes)])
    assert len(lags) == 800 and lags.min() >= 0 and lags.max() == summary["caption_lag_steps"]["max"]


def test_store_opens_with_plain_zarr(cartpole_run):
    run_dir, summary = cartpole_run
    g = zarr.open_group(str(run_dir / "store.zarr"), mode="r")
    assert dict(g.attrs) == {"format": "thalamus-store", "version": 1}
    ends = g["episodes/meta/episode_ends"][:]
    lengths = np.diff(ends, prepend=0)
    assert (lengths > 0).all() and lengths.sum() == ends[-1] == summary["steps_recorded"] == 800
    for key in ("obs", "frame", "action", "reward", "terminated", "truncated", "task", "time"):
        assert g[f"episodes/data/{key}"].shape[0] >= ends[-1]
    frames = g["episodes/data/frame"][: ends[-1]]
    assert frames.shape[1:] == (64, 64, 3) and frames.std() > 0
    # every episode ends in exactly one terminated or truncated row, at its last step
    done = g["episodes/data/terminated"][: ends[-1]] | g["episodes/data/truncated"][: ends[-1]]
    assert np.array_equal(np.flatnonzero(done), ends - 1)


def test_plot_draws_the_runs_curve_from_its_store(cartpole_run, tmp_path, capsys):
    run_dir, _ = cartpole_run
    png = tmp_path / "curve.png"
    proc = run_main(capsys, "plot", str(run_dir), "--png", str(png), "--window", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    store = open_store(run_dir)
    done = store.episode_complete
    ends, returns = store.episode_ends[done], store.episode_returns()[done]
    assert report["episodes"] == int(done.sum()) > 10
    for row in report["tenths"]:  # the mean of the last 5 episodes finished by that step, computed here
        i = np.searchsorted(ends, row["step"], side="right")
        expected = returns[max(0, i - 5): i].mean() if i else None
        assert row["mean_return"] == pytest.approx(expected) if i else row["mean_return"] is None
    assert row["mean_success"] is None  # CartPole reports no success
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[0] > 100 and pixels[..., :3].std() > 0.05  # a drawn figure, not a blank page
    one_clear_line(run_main(capsys, "plot", str(tmp_path / "nothing")), "no run at")
    one_clear_line(run_main(capsys, "plot", str(run_dir), "--window", "0"), "--window must be at least 1")


def test_export_writes_videos_that_decode_to_each_episodes_frames_and_the_steps_as_npz_and_csv(
        cartpole_run, tmp_path, capsys):
    import cv2

    run_dir, _ = cartpole_run
    proc = run_main(capsys, "memory", "export", str(run_dir), "--video", str(tmp_path / "v"), "--episodes", "0,2-3",
                    "--npz", str(tmp_path / "s.npz"), "--csv", str(tmp_path / "s.csv"), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    store = open_store(run_dir)
    assert [v["episode"] for v in report["videos"]] == [0, 2, 3]
    for v in report["videos"]:
        video, decoded = cv2.VideoCapture(v["path"]), 0
        while video.read()[0]:
            decoded += 1
        assert decoded == v["frames"] == store.episode_lengths[v["episode"]]
    steps = np.load(tmp_path / "s.npz")
    assert np.array_equal(steps["reward"], store.column("reward")) and len(steps["episode"]) == store.n_steps
    assert np.array_equal(np.flatnonzero(np.diff(steps["episode"])) + 1, store.episode_ends[:-1])
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert len(lines) == store.n_steps + 1 and lines[0].split(",")[:2] == ["episode", "step"]
    one_clear_line(run_main(capsys, "memory", "export", str(run_dir), "--video", str(tmp_path / "w"),
                            "--episodes", "99999"), "outside the store's episodes")
    one_clear_line(run_main(capsys, "memory", "export", str(run_dir)), "nothing to export")


def test_inspect_reports_the_store(cartpole_run):
    run_dir, summary = cartpole_run
    proc = run_here("memory", "inspect", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["version"] == 1 and report["episodes"] == summary["episodes_recorded"]
    assert sum(report["episode_lengths"]) == report["steps"] == 800
    finished = report["episode_returns"][: summary["episodes"]]
    assert all(r == n for r, n in zip(finished, report["episode_lengths"]))  # CartPole: +1 per step
    paths = {a["path"]: a for a in report["arrays"]}
    assert paths["episodes/data/frame"]["shape"] == [800, 64, 64, 3]
    assert paths["episodes/data/frame"]["dtype"] == "uint8"
    human = run_here("memory", "inspect", str(run_dir))
    assert human.returncode == 0 and "episodes/data/frame" in human.stdout


def test_captions_are_stored_per_step_and_say_what_the_frames_show(cartpole_run):
    """`thalamus run --env CartPole-v1` captions every frame with the shipped CartPole captioner."""
    from agent.perception.grammar import Vocab
    from envs.env_captions import POLE_CART_CAPTIONS, EnvCaptioner

    run_dir, summary = cartpole_run
    assert summary["captioner"].endswith("captioner-cartpole.pt")
    vocab = Vocab(tuple(json.loads((run_dir / "run.json").read_text())["caption_vocab"]))
    store = open_store(run_dir)
    hits = total = 0
    for i in range(store.n_episodes):
        ep = store.get_episode(i)
        assert ep["caption"].shape == (len(ep["obs"]), 12) and ep["caption"].dtype == np.int16
        assert not ep["caption_skipped"].any()  # by default every frame is read
        truth = EnvCaptioner("CartPole-v1", 0.02)
        for state, tokens in zip(ep["obs"], ep["caption"]):
            said = vocab.decode(tokens.tolist())
            assert said in POLE_CART_CAPTIONS
            hits += said == truth(state)
            total += 1
    assert total == 800 and hits / total >= 0.9, hits / total


def test_reacher_stores_mujoco_frames(ray_address, tmp_path):
    run_dir = tmp_path / "reacher"
    proc = run_here("run", "--env", "Reacher-v5", "--steps", "400", "--run-dir", str(run_dir),
                   "--address", ray_address, "--json")
    assert proc.returncode == 0, proc.stderr
    store = open_store(run_dir)
    assert store.n_steps == 400 and store.n_episodes == 8  # 8 envs, Reacher episodes are 50 steps
    frames = store.get_episode(0)["frame"]
    assert frames.shape == (50, 64, 64, 3) and frames.dtype == np.uint8
    assert np.abs(np.diff(frames.astype(int), axis=0)).sum() > 0  # the arm moves
    assert store.get_episode(0)["action"].shape == (50, 2)


@pytest.mark.parametrize("argv, expect", [
    (["run", "--env", "CartPol-v1"], "did you mean CartPole-v1"),
    (["run", "--steps", "-1"], "--steps must be between 1"),
    (["run", "--episodes", "0"], "--episodes must be between 1"),
    (["run", "--num-envs", "0"], "--num-envs must be between 1"),
    (["run", "--steps", "ten"], "invalid int value"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["memory", "inspect", "/nonexistent/run"], "no run at '/nonexistent/run'"),
    (["run", "--captioner", "/nonexistent.pt"], "--captioner /nonexistent.pt: no such file"),
    (["run", "--caption-skip", "5"], "reads at most 4 skipped frames in a row"),
    (["run", "--caption-skip", "1", "--captioner", "off"], "this run has no captioner"),
    (["run", "--captioner", "pyproject.toml"], "is not a thalamus captioner checkpoint"),
    (["bench", "caption", "--streams", "4", "--age", "0"], "--age must be at least 1 frame"),
    (["bench", "caption", "--sparse-block", "24"], "--sparse-block must be a power of two ≥ 16, got 24"),
    (["bench", "caption", "--sparse-top-p", "1.5"], "--sparse-top-p must be in (0, 1], got 1.5"),
])
def test_bad_input_getsone_clear_line(argv, expect, capsys):
    one_clear_line(run_main(capsys, *argv), expect)  # an unreachable --address: tests/test_run_cmd.py


def test_corrupt_and_newer_stores_are_refused_untouched(cartpole_run, tmp_path, capsys):
    import shutil

    run_dir, _ = cartpole_run
    newer, corrupt = tmp_path / "newer", tmp_path / "corrupt"
    shutil.copytree(run_dir, newer)
    shutil.copytree(run_dir, corrupt)
    meta = newer / "store.zarr" / "zarr.json"
    body = json.loads(meta.read_text())
    body["attributes"]["version"] = 2
    meta.write_text(json.dumps(body))
    (corrupt / "store.zarr" / "zarr.json").write_text("{ not json")
    for path, expect in ((newer, "newer thalamus"), (corrupt, "corrupt")):
        before = tree_digest(path)
        one_clear_line(run_main(capsys, "memory", "inspect", str(path)), expect)
        assert tree_digest(path) == before
    before = tree_digest(run_dir)
    one_clear_line(run_main(capsys, "run", "--run-dir", str(run_dir)), "already holds a run")
    assert tree_digest(run_dir) == before


# -- help, listing and the exit codes of bad input (issue 11, item 9) -------------------------------
def test_bare_thalamus_prints_the_help():
    proc = run_here()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: thalamus") and not proc.stderr
    for command in ("run", "replay", "caption", "train", "envs"):
        assert f"    {command}" in proc.stdout


def test_a_group_without_its_command_prints_its_help():
    proc = run_here("train")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: thalamus train") and "captioner" in proc.stdout


@pytest.mark.parametrize("argv, expect", [
    (["run", "--env", "NoSuchEnv-v0"], "supported: CartPole-v1, Acrobot-v1"),
    (["run", "--env", "CartPol-v1"], "did you mean CartPole-v1"),
    (["run", "--env", "reacher-v5"], "did you mean Reacher-v5"),
])
def test_an_unknown_env_is_bad_input_that_names_matches_and_the_list(argv, expect, capsys):
    proc = run_main(capsys, *argv)
    one_clear_line(proc, expect)
    assert proc.returncode == 2  # as every other bad flag
    assert "`thalamus envs`" in proc.stderr


def test_an_unknown_env_source_is_bad_input():
    proc = run_here("caption", "--source", "env:NoSuchEnv-v0", "--max-frames", "3")
    one_clear_line(proc, "supported: CartPole-v1")
    assert proc.returncode == 2


def test_envs_lists_what_the_unknown_env_line_points_to():
    from envs import SUPPORTED_ENVS
    from envs.tasks import TASK_SEQUENCES

    human = run_here("envs")
    assert human.returncode == 0, human.stderr
    for name in (*SUPPORTED_ENVS, *TASK_SEQUENCES):
        assert name in human.stdout
    proc = run_here("envs", "--json")
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    assert [e["id"] for e in listing["envs"]] == list(SUPPORTED_ENVS)
    kinds = {e["id"]: e["kind"] for e in listing["envs"]}
    assert kinds["CartPole-v1"] == "classic control" and kinds["Reacher-v5"] == "MuJoCo"
    assert listing["task_sequences"] == list(TASK_SEQUENCES)
    assert "Meta-World/pick-place-v3" in listing["meta_world"] and "pick-place-v3" in human.stdout


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_help_shows_defaults():
    proc = run_here("train", "captioner", "--help")
    assert proc.returncode == 0, proc.stderr
    text = _flat(proc.stdout)
    for flag, default in (("--steps N", "3000"), ("--streams N", "32"), ("--device {cpu,cuda}", "cpu"),
                          ("--seed SEED", "0"), ("--workers N", "1"), ("--mixer {delta,softmax}", "delta"),
                          ("--out PATH", "captioner.pt"), ("--data SRC", "synthetic")):
        after = text.split(f" {flag} ", 1)[1]
        assert f"(default: {default})" in after.split(" --", 1)[0], (flag, after[:200])
    bench = _flat(run_here("bench", "caption", "--help").stdout)
    assert "(default: 1000,10000,100000)" in bench


def test_train_captioner_defaults_are_the_training_config_and_the_readme_s():
    """The parser's defaults mirror TrainConfig's, and the README quotes the same step count."""
    import re

    from agent.perception.train import TrainConfig
    from launch.cli import build_parser

    args = build_parser().parse_args(["train", "captioner"])
    cfg = TrainConfig()
    assert (args.steps, args.streams, args.device, args.seed, args.workers, args.data) == (
        cfg.steps, cfg.streams, cfg.device, cfg.seed, cfg.workers, cfg.data)
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### `thalamus train captioner`", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"`--steps N`[^.]*?default (\d[\d,]*)", section) == [f"{cfg.steps:,}"]


# -- thalamus replay's output (issue 11, item 9), on a made-up score: no run to replay ---------------
def _fake_score(run_dir: Path, metric: str, matrix: list[list[float]]):
    from agent.evaluation import EvalConfig
    from agent.learner.forgetting import forgetting_report
    from agent.learner.scoring import RunScore
    from agent.learner.transfer import ForwardTransfer

    k = len(matrix)
    return RunScore(run=str(run_dir), sequence="fake-sequence", metric=metric, tasks=[f"task {i}" for i in range(k)],
                    report=forgetting_report(np.asarray(matrix)), intervals=[[None] * k] * k,
                    transfer=ForwardTransfer(None, [None] * k, [None] * k, [None] * k, [None] * k, "no --reference"),
                    evaluation=EvalConfig(episodes=3), stored=str(run_dir / "replay" / "x.json"), played=0)


@pytest.mark.parametrize("metric, matrix, shown", [
    ("success rate", [[0.5297499999999999, 0.1], [0.4700000000000001, 0.9312500000000001]], ["0.53", "0.93", "0.10"]),
    ("mean return", [[1.2345678e-4, 0.5297499999999999], [3.3333333e-4, 2.5e-5]], ["0.000123", "0.530", "2.50e-05"]),
])
def test_replay_rounds_its_numbers_and_says_where_it_wrote(metric, matrix, shown, tmp_path, monkeypatch, capsys):
    """Printed numbers are rounded: success rates to 2 decimals, returns to 3 significant digits (a
    return of 1e-4 is not "0.000"); the JSON keeps them whole, and every file written is named."""
    import re

    import agent.learner.scoring
    from launch.cli import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    score = _fake_score(run_dir, metric, matrix)
    monkeypatch.setattr(agent.learner.scoring, "score_run", lambda *args: score)
    out_json = tmp_path / "r.json"
    assert main(["replay", str(run_dir), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    for text in shown:
        assert text in out
    assert not re.search(r"\d\.\d{7,}", out), out  # no float printed in full
    assert f"{run_dir / 'forgetting.png'}" in out and str(out_json) in out
    assert (run_dir / "forgetting.png").stat().st_size > 0
    assert json.loads(out_json.read_text())["matrix"] == matrix  # full precision


def test_replay_max_steps_default_is_the_evaluations():
    from agent.evaluation import EvalConfig
    from launch.cli import build_parser

    assert build_parser().parse_args(["replay", "RUN"]).max_steps == EvalConfig.max_steps


def test_every_known_error_names_an_exception_type_that_exists():
    """The failure path looks error types up by name; a renamed or moved type would turn its one clear
    line back into a traceback."""
    import importlib

    from launch.cli import KNOWN_ERRORS

    for module, name in KNOWN_ERRORS:
        assert issubclass(getattr(importlib.import_module(module), name), Exception), (module, name)

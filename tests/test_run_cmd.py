"""What a new user of `thalamus run` hit: how a run starts, ends, stops and says so."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

from conftest import one_clear_line, run_actor_pid, run_here, run_main
from memory import open_store


def test_a_run_whose_cluster_cannot_be_reached_leaves_no_running_run_behind(tmp_path):
    run_dir = tmp_path / "never"
    proc = run_here("run", "--steps", "100", "--run-dir", str(run_dir), "--address", "127.0.0.1:9")
    one_clear_line(proc, "cannot reach a Ray cluster at 127.0.0.1:9")
    manifest = run_dir / "run.json"
    assert not manifest.exists() or json.loads(manifest.read_text())["status"] != "running"


def test_a_run_on_a_terminal_says_what_it_does_rounds_out_loud_and_ends_its_bar_at_the_summary(ray_address, tmp_path):
    """Before the first step it says what is happening; --steps 300 with 8 envs runs 304 steps and says
    so; the live bar's last picture agrees with the summary (it used to freeze short of it)."""
    import pty

    run_dir = tmp_path / "tty"
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "220", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "run", "--steps", "300", "--num-envs", "8",
                             "--captioner", "off", "--run-dir", str(run_dir), "--address", ray_address],
                            stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(master)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-2000:]
    said = [ln for ln in text.splitlines() if ln.startswith("thalamus:")]
    assert any("joined the Ray cluster" in ln for ln in said), said
    assert any("starting the actors" in ln for ln in said), said
    assert any("rounded up to 304 steps" in ln for ln in said), said
    counts = [int(c.replace(",", "")) for c in re.findall(r"([\d,]+)/304 steps", text)]
    assert counts and counts[-1] == 304, counts[-5:]
    assert open_store(run_dir).n_steps == 304
    assert "final.pt" in text  # the summary names the checkpoint with the final models



def test_ctrl_c_commits_what_was_seen_says_how_to_go_on_and_the_resume_counts_the_runs_last_20(ray_address,
                                                                                                  tmp_path, capsys):
    """Ctrl-C: exit 130, the --resume hint, final.pt named; the episodes it cut short are marked, and
    the resumed run's mean return is of the run's last 20 complete episodes, not those since the resume."""
    run_dir = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "run", "--steps", "1000000", "--num-envs", "4",
                             "--captioner", "off", "--run-dir", str(run_dir), "--address", ray_address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: Ctrl-C delivered (a test process may have SIGINT ignored,
                            # which a child inherits)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the store holds more than 20 episodes
        if (run_dir / "store.zarr" / "episodes").is_dir() and open_store(run_dir).n_episodes > 25:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"go on with: thalamus run --resume {run_dir}" in out.splitlines(), out
    assert "final.pt" in out
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    store = open_store(run_dir)
    assert not store.episode_complete.all()  # the envs' open episodes were cut and marked so
    again = run_here("run", "--resume", str(run_dir), "--steps", str(store.n_steps + 80), "--address", ray_address,
                    "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    store = open_store(run_dir)
    complete = store.episode_complete
    assert complete.sum() == summary["episodes"] < store.n_episodes  # the ends cut short are not counted
    returns = store.episode_returns()[complete]
    assert np.isclose(summary["mean_return_last20"], np.mean(returns[-20:]))
    done = run_main(capsys, "run", "--resume", str(run_dir))  # its budget is spent: more needs a larger --steps
    one_clear_line(done, "already holds")
    assert "--steps" in done.stderr



def test_a_killed_recorder_is_restarted_and_the_run_goes_on(ray_address, tmp_path):
    run_dir = tmp_path / "recorder"
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "run", "--steps", "2400", "--num-envs", "4",
                             "--captioner", "off", "--run-dir", str(run_dir), "--address", ray_address, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((run_dir / "store.zarr" / "episodes").is_dir() and open_store(run_dir).n_episodes >= 3):
        assert time.monotonic() < deadline, "the run never committed an episode"
        time.sleep(0.3)
    os.kill(run_actor_pid(proc.pid, "RecorderActor"), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["restarts"] >= 1 and summary["steps"] == 2400
    store = open_store(run_dir)
    assert store.n_steps <= 2400 and store.n_episodes > 3  # episodes in flight at the kill may be lost, no more
    assert "Traceback" not in err and "actor died" not in err


def test_a_full_disk_stops_the_run_cleanly_keeping_what_was_committed(ray_address, tmp_path):
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        raise AssertionError(f"this test needs to mount a 1 MB tmpfs (as root): {mounted.stderr.decode()}")
    try:
        run_dir = disk / "run"
        proc = run_here("run", "--steps", "40000", "--num-envs", "4", "--captioner", "off", "--run-dir", str(run_dir),
                       "--address", ray_address, "--json")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert "warning:" in proc.stderr  # said at start: less free space than the run will need
        assert "is full" in last and "episodes committed" in last and f"thalamus run --resume {run_dir}" in last, last
        manifest = json.loads((run_dir / "run.json").read_text())
        assert manifest["status"] == "failed" and manifest["error"] == "disk full"
        committed = int(last.split("stopped with ")[1].split(" episodes")[0].replace(",", ""))
        store = open_store(run_dir)
        assert store.n_episodes == committed > 0
        for i in range(store.n_episodes):  # every committed episode reads back whole
            assert len(store.get_episode(i)["reward"]) == store.episode_lengths[i]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_the_readme_shows_the_defaults_run_help_shows():
    """One source of defaults: AgentConfig's fields are run's flags, and the README's table says the same."""
    from pathlib import Path

    from agent.config import AgentConfig

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    cells = [re.split(r"(?<!\\)\|", ln) for ln in readme.splitlines() if ln.startswith("| `--")]
    rows = {c[1].strip().split()[0].strip("`"): c[2].strip() for c in cells}
    help_text = run_here("run", "--help").stdout
    flags = {"env_id": "--env", "checkpoint_every_s": "--checkpoint-every"}
    checked = 0
    for name, value in AgentConfig().to_dict().items():
        if isinstance(value, dict) or name == "ppo":
            continue  # the models' own settings are kept with the run, not flags
        flag = flags.get(name, "--" + name.replace("_", "-"))
        assert flag in help_text, flag
        assert rows[flag] == ("none" if value is None else f"`{value}`"), (flag, rows[flag], value)
        checked += 1
    assert checked == 23
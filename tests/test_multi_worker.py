"""Two workers on 127.0.0.1 (`distribute: multi_worker`, TF_CONFIG): sharding, agreement, chief-only writes, resume."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers import QUICKSTART, ROOT, sets, tiny_overrides

pytestmark = pytest.mark.slow


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(out, tmp, epochs, *extra):
    ports = free_ports(2)
    overrides = tiny_overrides(
        **{"output_dir": str(out), "train.epochs": epochs, "train.steps_per_epoch": 3,
           "train.distribute": "multi_worker", "train.check_replicas": True}
    )  # fmt: skip
    procs = []
    for index in (0, 1):
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TMPDIR=str(tmp))
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
        command = [sys.executable, "-m", "keras_colour.cli", "train", QUICKSTART, "--stage", "train", *sets(overrides)]
        procs.append(
            subprocess.Popen(
                command + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
            )  # fmt: skip
        )
    return procs


def finish(procs, timeout=600):
    results = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    return [err for _, err in results]


def digests(log):
    return re.findall(r"worker digest after epoch (\d+): (\S+)", log)


def test_two_workers_shard_agree_write_once_and_resume_after_a_kill(tmp_path, demo_cache):
    out, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    # Train to 4 epochs; kill a worker (then the other, as a cluster manager would) once 2 are done.
    procs = start_workers(out, tmp, 4)
    deadline = time.time() + 600
    state = out / "state.json"
    while not state.exists() or json.loads(state.read_text())["completed_epochs"] < 2:
        assert time.time() < deadline and all(p.poll() is None for p in procs), procs[0].stderr.read()[-3000:]
        time.sleep(0.05)
    for p in reversed(procs):
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    killed = [p.stderr.read() for p in procs]
    # Different parts of each global batch: 2 images each (global batch 4), different checksums.
    parts = [re.search(r"first global batch: (\d+) images, checksum (\S+)", log).groups() for log in killed]
    assert parts[0][0] == parts[1][0] == "2" and parts[0][1] != parts[1][1]
    # The weights agreed after every step (check_replicas compares them across workers; a difference is an error)
    # and the per-epoch checksums printed by each worker are equal.
    common = min(len(digests(log)) for log in killed)  # (the kill can land between the two workers' lines)
    assert common >= 1 and digests(killed[0])[:common] == digests(killed[1])[:common]
    assert [e for e, _ in digests(killed[0])][:common] == [str(e) for e in range(1, common + 1)]
    done = json.loads(state.read_text())["completed_epochs"]
    assert 2 <= done <= 4
    # The killed worker's scratch folder: a kill leaves no chance to remove it (nor TensorFlow's autograph files).
    ours = lambda: [name for name in os.listdir(tmp) if name.startswith("keras-colour")]  # noqa: E731
    left = ours()
    assert len(left) == 1 or (done == 4 and not left)

    # Resume: both workers continue from the chief's checkpoint and finish.
    chief, other = finish(start_workers(out, tmp, 4, "--resume"))
    if done < 4:  # (the kill can land just after the last epoch: then there is nothing left to resume)
        assert f"({done} epochs completed" in chief and f"({done} epochs completed" in other
        assert digests(chief) == digests(other) and [e for e, _ in digests(chief)] == [
            str(e) for e in range(done + 1, 5)
        ]
    state = json.loads(state.read_text())
    assert state["completed_epochs"] == 4 and state["finished"]
    assert [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]] == ["1", "2", "3", "4"]
    # Only the chief wrote: the run folder is complete; the other worker's folder was temporary and is gone.
    assert {"generator.keras", "history.csv", "loss_curves.png", "state.json", "checkpoints"} <= set(os.listdir(out))
    assert "this worker writes into" in other and "this worker writes into" not in chief
    # The restarted worker removed what the killed one left, and its own folder at the end.
    assert ours() == []
    if left:
        assert re.fullmatch(r"keras-colour-worker1-[0-9a-f]{12}", left[0]) and "left by a stopped worker" in other

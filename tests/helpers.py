"""Helpers shared by the tests."""

import fcntl
import os
import pickle
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_overrides(**extra):
    base = {
        "data.image_size": 32,
        "data.batch_size": 4,
        "data.demo_train_crops": 16,
        "model.base_filters": 4,
        "model.max_filters": 16,
        "model.num_downsamples": 4,
        "train.epochs": 1,
        "train.verbose": 0,
        "train.sample_images": 2,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def python_subprocess(code, env=None, timeout=600):
    """Runs `code` in a fresh Python (no keras_colour import unless the code does it)."""

    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT
    )


QUICKSTART = os.path.join(ROOT, "experiments", "quickstart.yaml")


def cli(*args, env=None, timeout=600):
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command line must be quiet by itself
    return subprocess.run(
        [sys.executable, "-m", "keras_colour.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=timeout,
    )


def sets(overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def one_line_error(result, *needles, code=2):
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("keras-colour: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def copy_of_run(run, target):
    """A copy of a run folder at `target` whose config.yaml names the copy (a test changes the copy, not the run)."""
    shutil.copytree(run, target)
    config = (target / "config.yaml").read_text().replace(str(run), str(target))
    (target / "config.yaml").write_text(config)
    return target


def built_once(tmp_path_factory, name, build):
    """`build(folder)`'s value, built once per test session and shared by every pytest-xdist worker.

    The first worker to ask builds it into a folder of the session's shared temporary directory, under a lock,
    and pickles the value beside it; the others wait for the lock and read it back. The value (paths, arrays)
    and the folder are read-only for the tests: a test that changes a run copies it first.
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, value_file = root / f"shared-{name}", root / f"shared-{name}.pickle"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if value_file.exists():
            return pickle.loads(value_file.read_bytes())
        shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed half-way left
        folder.mkdir()
        value = build(folder)
        value_file.write_bytes(pickle.dumps(value))
        return value

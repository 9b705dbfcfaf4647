"""Helpers shared by the tests."""

import os
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

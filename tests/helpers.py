"""Helpers shared by the tests."""

import os
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
    import subprocess

    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT
    )

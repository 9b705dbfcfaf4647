"""Runs every example of docs/extending.md as written: the page's code blocks are this test's input."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, cli, one_line_error, python_subprocess, sets

DOC = os.path.join(ROOT, "docs", "extending.md")
PARTS = ("residual_unet.py", "l1_colourful.py", "two_d_steps.py")
TINY = ["train.epochs=1", "data.image_size=32", "model.num_downsamples=3", "model.base_filters=4",
        "data.demo_train_crops=16", "data.batch_size=4", "train.verbose=0"]  # fmt: skip


def page():
    text = open(DOC, encoding="utf-8").read()
    files = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, re.S))
    outputs = dict(re.findall(r"<!-- output: (.+?) -->\n```\n(.*?)```", text, re.S))
    return files, outputs


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The page's files, written to a folder outside the package, as a researcher would save them."""
    folder = tmp_path_factory.mktemp("my_parts")
    for name, code in page()[0].items():
        (folder / name).write_text(code, encoding="utf-8")
    return folder


def test_each_part_is_one_file_with_one_decorator():
    files, _ = page()
    assert set(files) == {*PARTS, "my_experiment.yaml", "test_my_parts.py"}
    for name in PARTS:
        assert len(re.findall(r"^@register_\w+\(", files[name], re.M)) == 1, name
    config = yaml.safe_load(files["my_experiment.yaml"])
    assert config["plugins"] == list(PARTS)
    assert (config["model"]["generator"], config["loss"]["colour"], config["train"]["protocol"]) == (
        "residual_unet", "l1_colourful", "two_d_steps")  # fmt: skip


def test_check_lists_the_new_names_as_the_page_shows(example):
    result = cli("check", example / "my_experiment.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    shown = page()[1]["keras-colour check my_experiment.yaml"].splitlines()
    assert f"{example / 'my_experiment.yaml'}{shown[0][len('my_experiment.yaml') :].split('...')[0]}" in result.stdout
    for line in shown[1:]:
        assert line in result.stdout.splitlines(), (line, result.stdout)
    # without its plugins the same YAML names an unknown generator: one line naming the key and the file
    bare = example / "bare.yaml"
    bare.write_text((example / "my_experiment.yaml").read_text().replace("plugins:", "unused_plugins:"))
    bare.write_text("\n".join(line for line in bare.read_text().splitlines() if "unused_plugins" not in line))
    one_line_error(cli("check", bare), "bare.yaml", "model.generator", "residual_unet", code=1)


def test_the_pages_own_test_file_passes(example):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_parts.py"],
                            cwd=example, capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


@pytest.mark.slow
def test_a_one_epoch_run_from_the_yaml_uses_every_new_part_and_saves_a_plain_keras_generator(
    example, demo_cache, tmp_path
):
    run = tmp_path / "run"
    result = cli("train", example / "my_experiment.yaml", *sets(TINY + [f"output_dir={run}"]))
    assert result.returncode == 0, result.stderr[-3000:]
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"g_colour", "g_colourfulness", "g_adversarial", "d_loss"} <= set(header)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["plugins"] == [str(example / name) for name in PARTS]  # absolute: the run folder finds them
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["images"] > 0 and 0 <= metrics["js_a"] <= 1
    code = f"""
import sys, numpy as np, keras
model = keras.models.load_model({str(run / "generator.keras")!r})
assert "keras_colour" not in sys.modules and model.name == "residual_unet"
print(model.predict(np.zeros((1, 32, 32, 1), np.float32), verbose=0).shape)
"""
    loaded = python_subprocess(code)
    assert loaded.returncode == 0 and "(1, 32, 32, 2)" in loaded.stdout, loaded.stderr[-3000:]
    # a later `evaluate` reads the run's config.yaml, which loads the plugins again
    result = cli("evaluate", f"{run}=mine", "--output", tmp_path / "table")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| mine |" in (tmp_path / "table" / "comparison.md").read_text()

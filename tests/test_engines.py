"""Inference engines (`--engine`): agreement with TensorFlow, the remembered `auto` choice, clear refusals."""

import json
import logging
import os
import sqlite3
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from helpers import cli, one_line_error
from keras_colour import engines
from keras_colour.heads import predict_ab
from keras_colour.models import build_generator
from keras_colour.models.export import inference_generator
from keras_colour.serving import reference_input


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_COLOUR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def generator():
    """A narrow 64x64 Gorriz generator with spectral norm and batch norm (statistics moved off their start)."""
    keras.utils.set_random_seed(5)
    model = build_generator("gorriz", image_size=64, base_filters=8, num_downsamples=5, spectral_norm=True)
    model(reference_input(64, 64, batch=4), training=True)  # one training call: spectral norm's u, BN statistics
    return model


@pytest.mark.parametrize("name", ["tensorflow", "onnxruntime", "litert"])
def test_every_engine_predicts_the_keras_models_ab(name, generator, cache):
    x = reference_input(64, 64, batch=3)
    expected = np.asarray(predict_ab(generator, x))
    engine = engines.choose_engine(generator, name, batch_size=3)
    assert engine.name == name
    got = np.asarray(engine.predict_ab(x))
    assert got.shape == expected.shape == (3, 64, 64, 2)
    assert np.abs(got - expected).max() <= (1e-5 if name == "tensorflow" else engines.TOLERANCE)
    assert np.abs(expected).max() > 0.01  # a real prediction, not zeros
    if name != "tensorflow":  # exported once into the cache folder, beside its check report
        found = (cache / "engines").rglob("generator_lowres_64x64*")
        (exported,) = [p for p in found if p.suffix in (".onnx", ".tflite")]
        assert json.loads(open(f"{exported}.json").read())["max_abs_diff"]["64x64"] <= engines.TOLERANCE


def test_auto_measures_once_remembers_the_fastest_and_reads_it_back(generator, cache, caplog):
    caplog.set_level(logging.INFO, logger="keras_colour.engines")
    first = engines.choose_engine(generator, "auto", batch_size=2)
    rows = sqlite3.connect(cache / "engines.sqlite").execute("SELECT machine, engine, seconds FROM choices").fetchall()
    assert len(rows) == 1
    machine, chosen, seconds = rows[0]
    seconds = json.loads(seconds)
    assert set(seconds) == {"tensorflow", "onnxruntime", "litert"} and all(s > 0 for s in seconds.values())
    assert chosen == first.name == min(seconds, key=seconds.get)
    assert json.loads(machine)["cpu"] and "cores" in json.loads(machine)
    assert "measured once" in caplog.text
    # Another process (here: the memo forgotten) reads the choice back without measuring again.
    engines._CHOSEN.clear()
    caplog.clear()
    again = engines.choose_engine(generator, "auto", batch_size=2)
    assert again.name == chosen and "measured before" in caplog.text
    assert len(sqlite3.connect(cache / "engines.sqlite").execute("SELECT * FROM choices").fetchall()) == 1
    # Other weights are another model: measured on their own.
    other = keras.models.clone_model(generator)
    other.set_weights([w * 0.5 for w in generator.get_weights()])
    assert engines.model_key(other) != engines.model_key(generator)


def test_an_engine_that_disagrees_is_refused_and_auto_leaves_it_out(generator, cache, monkeypatch, caplog):
    real = engines.OnnxRuntimeEngine.predict_ab
    monkeypatch.setattr(engines.OnnxRuntimeEngine, "predict_ab", lambda self, x: real(self, x) + 1e-3)
    with pytest.raises(engines.EngineError, match=r"onnxruntime: its ab differs from TensorFlow's by 1\.0e-03"):
        engines.choose_engine(generator, "onnxruntime", batch_size=1)
    caplog.set_level(logging.INFO, logger="keras_colour.engines")
    chosen = engines.choose_engine(generator, "auto", batch_size=1)
    assert chosen.name != "onnxruntime" and "onnxruntime left out" in caplog.text


def test_missing_runtime_and_free_size_models_are_said_plainly(cache, monkeypatch):
    sized = build_generator("unet", image_size=32, base_filters=4, num_downsamples=3)
    free = inference_generator(sized, (None, None))  # any spatial size
    with pytest.raises(engines.EngineError, match="no fixed input size"):
        engines.choose_engine(free, "litert")
    assert engines.choose_engine(free, "auto").name == "tensorflow"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the export extra were not installed
    with pytest.raises(engines.EngineError, match=r"onnxruntime.*pip install -e \"\.\[export\]\""):
        engines.choose_engine(sized, "onnxruntime")


def test_colourise_command_line_engines_give_the_same_pictures(tmp_path, photos, cache):
    keras.utils.set_random_seed(2)
    model_path = tmp_path / "generator.keras"
    build_generator("gorriz", image_size=64, base_filters=8, num_downsamples=5).save(model_path)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photos[1]).resize((200, 150)).save(src / "coffee.jpg", quality=95)
    outputs = {}
    for name in ("tensorflow", "litert", "auto"):
        result = cli("colourise", "--model", model_path, src, "--output", tmp_path / name, "--engine", name,
                     env={"KERAS_COLOUR_CACHE": str(cache)})  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = np.asarray(Image.open(tmp_path / name / "coffee.png")).astype(int)
    for name in ("litert", "auto"):
        assert np.abs(outputs[name] - outputs["tensorflow"]).max() <= 1
    assert "engine auto:" in result.stderr
    bad = cli("colourise", "--model", model_path, src, "--output", tmp_path / "x", "--engine", "fast")
    assert bad.returncode == 2 and "argument --engine: invalid choice: 'fast'" in bad.stderr
    assert not os.path.exists(tmp_path / "x")
    # An engine named explicitly that cannot run here is one line, exit 2, nothing written.
    result = cli("colourise", "--model", model_path, src, "--output", tmp_path / "y", "--engine", "litert",
                 "--precision", "bfloat16")  # fmt: skip
    one_line_error(result, "--engine litert runs float32 only")
    assert not os.path.exists(tmp_path / "y")


def test_engine_option_is_documented_and_a_keras_file_never_gets_custom_layers(tmp_path):
    from keras_colour.serving import ExportError, export_generator

    for command in (("colourise",), ("serve",), ("study", "serve")):
        result = cli(*command, "--help")
        assert result.returncode == 0 and "--engine {auto,tensorflow,onnxruntime,litert}" in result.stdout
        assert "engines.sqlite" in " ".join(result.stdout.split())
    model = build_generator("gorriz", image_size=32, base_filters=4, num_downsamples=4)
    with pytest.raises(ExportError, match="built-in layers only"):
        export_generator(model, "keras", tmp_path / "g.keras", low_resolution=True)
    assert not os.listdir(tmp_path)

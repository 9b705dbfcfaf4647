"""`keras-colour export`: every format loaded back in its own runtime and compared with Keras."""

import json

import keras
import numpy as np
import pytest

from helpers import cli, one_line_error
from keras_colour.models import build_generator
from keras_colour.models.export import inference_generator
from keras_colour.serving import RUNTIMES, export_generator, reference_input

OPTIONS = dict(norm="ibn", spectral_norm="bbc", base_filters=8, max_filters=32, num_downsamples=5)


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory):
    """A generator saved as a run trained under mixed_bfloat16 saves it (spectral norm folded on export)."""
    from keras_colour.models.export import plain_generator

    path = str(tmp_path_factory.mktemp("mixed") / "generator.keras")
    keras.utils.set_random_seed(5)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        plain_generator(build_generator("gorriz", 64, **OPTIONS)).save(path)
    finally:
        keras.config.set_dtype_policy("float32")
    return path


@pytest.mark.parametrize(
    "fmt, name, dynamic",
    [("keras", "g.keras", True), ("savedmodel", "g_savedmodel", True), ("onnx", "g.onnx", True),
     ("litert", "g.tflite", False)],
)  # fmt: skip
def test_each_format_agrees_with_keras_in_its_own_runtime(mixed_file, tmp_path, fmt, name, dynamic):
    model = keras.models.load_model(mixed_file, compile=False)
    assert model.layers[3].dtype_policy.compute_dtype == "bfloat16"
    report = export_generator(model, fmt, str(tmp_path / name), dynamic=dynamic)
    assert all(d <= 1e-4 for d in report["max_abs_diff"].values()) and len(report["max_abs_diff"]) == 1 + dynamic
    reference = inference_generator(model, (None, None))
    assert all(layer.dtype_policy.compute_dtype == "float32" for layer in reference.layers)
    for h, w in ((64, 64), (96, 128)) if dynamic else ((64, 64),):
        x = reference_input(h, w)
        got = RUNTIMES[fmt](str(tmp_path / name), x)  # loaded afresh, in that runtime
        assert got.shape == (1, h, w, 2)
        assert np.abs(got - reference.predict(x, verbose=0)).max() <= 1e-4
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved["format"] == fmt and saved["dtype"] == "float32"
    if fmt == "onnx":  # named as the Keras model's input, not tf2onnx's `unk__690`
        import onnxruntime

        session = onnxruntime.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [model.inputs[0].name.split(":")[0]] == ["L"]
        assert [o.name for o in session.get_outputs()] == ["ab"]


def test_spectral_norm_is_folded_exactly(tmp_path):
    keras.utils.set_random_seed(6)
    model = build_generator("gorriz", 64, **OPTIONS)
    x = reference_input(64, 64, batch=2)
    export_generator(model, "keras", str(tmp_path / "g.keras"))
    # The BBC layer takes one power-iteration step on every call; the export folds in the kernel of the next call.
    expected = model(x, training=False).numpy()
    loaded = keras.models.load_model(tmp_path / "g.keras", compile=False)  # plain Keras, no keras_colour layers
    assert not any("Spectral" in type(layer).__name__ for layer in loaded.layers)
    assert np.abs(loaded.predict(x, verbose=0) - expected).max() <= 1e-4


def test_export_mistakes_are_one_line_and_leave_nothing(mixed_file, tmp_path):
    one_line_error(
        cli("export", mixed_file, "--format", "litert", "--dynamic", "--output", tmp_path / "g.tflite"),
        "litert needs a fixed size",
    )
    one_line_error(
        cli("export", mixed_file, "--format", "onnx", "--size", "60", "64", "--output", tmp_path / "g.onnx"),
        "multiples of 32",
    )
    (tmp_path / "taken.onnx").write_text("keep me")
    one_line_error(cli("export", mixed_file, "--format", "onnx", "--output", tmp_path / "taken.onnx"), "--overwrite")
    assert (tmp_path / "taken.onnx").read_text() == "keep me"
    one_line_error(cli("export", tmp_path, "--format", "keras", "--output", tmp_path / "x.keras"), "generator.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.onnx"]


def test_export_command_from_a_run_folder(mixed_file, tmp_path):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(mixed_file, run / "generator.keras")
    result = cli("export", run, "--format", "savedmodel", "--output", tmp_path / "served", "--size", "64", "96")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Exported savedmodel" in result.stdout and "64x96" in result.stdout
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "served"))
    out = served.serve(tf.constant(reference_input(64, 96)))
    assert out.shape == (1, 64, 96, 2) and out.dtype == tf.float32


def test_the_bfloat16_copy_is_built_once_per_model_and_follows_its_weights():
    from keras_colour.models import build_generator
    from keras_colour.precision import bfloat16_generator

    model = build_generator("unet", 32, base_filters=4, max_filters=8, num_downsamples=3)
    first = bfloat16_generator(model)
    assert first is not model and any(layer.dtype_policy.name == "mixed_bfloat16" for layer in first.layers)
    model.set_weights([w + 1.0 for w in model.get_weights()])
    again = bfloat16_generator(model)
    assert again is first
    for a, b in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = build_generator("unet", 32, base_filters=4, max_filters=8, num_downsamples=3)
    assert bfloat16_generator(other) is not first

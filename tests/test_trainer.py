import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_colour
from helpers import ROOT, python_subprocess, tiny_overrides
from keras_colour.config import config_from_dict
from keras_colour.models.perceptual import FeatureReconstruction, FeatureWeightsError

FAMILIES = {
    "unet": dict(generator="unet", discriminator="none", adversarial="none"),
    "pix2pix": dict(generator="pix2pix", discriminator="patchgan", adversarial="bce"),
    "gorriz3": dict(
        generator="gorriz", discriminator="multiscale", adversarial="lsgan", d_scales=3, norm="ibn", spectral_norm=True
    ),
    "gorriz_vgg16": dict(generator="gorriz", discriminator="multiscale", adversarial="lsgan", feature=True),
}


def family_config(name, size=32, **extra):
    f = dict(FAMILIES[name])
    overrides = {
        "data.image_size": size,
        "data.batch_size": 4,
        "model.generator": f["generator"],
        "model.discriminator": f["discriminator"],
        "loss.adversarial": f["adversarial"],
        "model.base_filters": 8,
        "model.max_filters": 32,
        "model.num_downsamples": 4,
    }
    for key in ("d_scales", "norm", "spectral_norm"):
        if key in f:
            overrides[f"model.{key}"] = f[key]
    if f.get("feature"):
        overrides["loss.feature"] = "{backbone: vgg16, weights: random, allow_random_weights: true, weight: 1.0e-3}"
    overrides.update(extra)
    return config_from_dict({}, overrides=[f"{k}={v}" for k, v in overrides.items()])


def fixed_batch(size=32, n=4, seed=0):
    """A fixed batch of real photograph crops as (L_n, ab_n)."""
    import skimage.data

    from keras_colour import colour

    photo = tf.image.convert_image_dtype(skimage.data.coffee(), tf.float32)
    crops = tf.stack(
        [tf.image.resize(photo[i * 60 : i * 60 + 200, i * 80 : i * 80 + 200], [size, size]) for i in range(n)]
    )
    return colour.rgb_to_lab_normalized(crops)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_and_overfits_one_batch(family):
    # Adam moves each weight by about the learning rate per step, so at the default 2e-4 the colour loss falls only
    # to 0.75-0.82x of its start in 36 steps, and a 0.8 threshold failed about one run in five (CPU reductions are not
    # bit-reproducible across thread timings). At 2e-3 every family ends at 0.22-0.35x (seeds 1 and 2 measured), so
    # asserting < 0.6x holds by a wide margin while a generator that does not learn still fails.
    keras.utils.set_random_seed(1)
    trainer = keras_colour.build_trainer(family_config(family, **{"train.g_learning_rate": 2e-3}))
    lightness, ab = fixed_batch()
    ds = tf.data.Dataset.from_tensors((lightness, ab)).repeat()
    history = trainer.fit(ds, epochs=6, steps_per_epoch=6, verbose=0).history
    expected = {"g_loss", "g_colour"}
    if FAMILIES[family]["discriminator"] != "none":
        expected |= {"g_adversarial", "d_loss"}
    if FAMILIES[family].get("d_scales") == 3:
        expected |= {"d_loss_s1", "d_loss_s2", "d_loss_s3"}
    if FAMILIES[family].get("feature"):
        expected |= {"g_feature", "g_feature_ratio"}
    assert set(history) == expected
    assert all(np.isfinite(v).all() for v in history.values())
    first, last = history["g_colour"][0], history["g_colour"][-1]
    assert last < 0.6 * first, (first, last)


def test_lab_and_rgb_layouts_give_the_same_losses_and_a_wrong_layout_is_named():
    from keras_colour.batch import BatchLayout

    lightness, ab = fixed_batch()
    rgb = keras_colour.colour.lab_normalized_to_rgb(lightness, ab)
    keras.utils.set_random_seed(3)
    lab_trainer = keras_colour.build_trainer(family_config("unet"))
    rgb_trainer = keras_colour.build_trainer(family_config("unet", **{"data.lab_on_device": True}))
    assert rgb_trainer.layout == BatchLayout(rgb=True)
    rgb_trainer.generator.set_weights(lab_trainer.generator.get_weights())
    a = lab_trainer.evaluate(tf.data.Dataset.from_tensors((lightness, ab)), verbose=0, return_dict=True)
    b = rgb_trainer.evaluate(tf.data.Dataset.from_tensors(rgb), verbose=0, return_dict=True)
    assert a["g_colour"] == pytest.approx(b["g_colour"], rel=1e-4)
    with pytest.raises(ValueError, match=r"laid out as \(L_n, ab_n\); got 1 item\(s\) of shapes \[\(4, 32, 32, 3\)\]"):
        lab_trainer.evaluate(tf.data.Dataset.from_tensors(rgb), verbose=0)


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _changed(before, model):
    return any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


@pytest.mark.parametrize("frozen", ["generator", "discriminator"])
def test_each_update_touches_only_its_own_network(frozen):
    # Spectral norm off: Keras's SpectralNormalization rewrites its kernel with the normalised one on every
    # training-mode call (forward pass, not optimiser), which would blur what this test isolates.
    trainer = keras_colour.build_trainer(family_config("gorriz3", **{"model.spectral_norm": False}))
    # Adam with a learning rate of 0 for one network isolates what the *other* network's update does.
    frozen_optimizer = trainer.g_optimizer if frozen == "generator" else trainer.d_optimizer
    frozen_optimizer.learning_rate.assign(0.0)
    g0, d0 = _weights(trainer.generator), _weights(trainer.discriminator)
    lightness, ab = fixed_batch()
    trainer.fit(tf.data.Dataset.from_tensors((lightness, ab)).repeat(3), epochs=1, verbose=0)
    if frozen == "generator":  # only the discriminator step applied
        assert not _changed(g0, trainer.generator) and _changed(d0, trainer.discriminator)
    else:  # only the generator step applied
        assert not _changed(d0, trainer.discriminator) and _changed(g0, trainer.generator)


def test_feature_loss_zero_for_identical_positive_otherwise_and_reaches_generator(caplog):
    feature = FeatureReconstruction(
        "vgg16", ["block3_conv3"], weights="random", allow_random_weights=True, image_size=32
    )
    assert "RANDOM WEIGHTS" in caplog.text
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((2, 32, 32, 3)), tf.float32)
    y = tf.constant(rng.random((2, 32, 32, 3)), tf.float32)
    assert np.allclose(feature(x, x).numpy(), 0.0)
    assert np.all(feature(x, y).numpy() > 0)
    trainer = keras_colour.build_trainer(family_config("gorriz_vgg16", **{"loss.colour_weight": 0.0}))
    batch = trainer.layout.unpack(fixed_batch())
    with tf.GradientTape() as tape:
        outputs, fake_ab = trainer.generate(batch, training=True)
        terms = trainer.generator_terms(batch, outputs, fake_ab, trainer.judge(batch, fake_ab, training=True))
    grads = tape.gradient(terms["g_feature"], trainer.generator.trainable_variables)
    assert float(terms["g_feature"]) > 0
    assert all(g is not None for g in grads) and sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0


def test_feature_backbone_is_frozen_and_not_trained():
    trainer = keras_colour.build_trainer(family_config("gorriz_vgg16"))
    before = [w.copy() for w in trainer.feature_loss.model.get_weights()]
    lightness, ab = fixed_batch()
    trainer.fit(tf.data.Dataset.from_tensors((lightness, ab)).repeat(2), epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, trainer.feature_loss.model.get_weights()))


def test_imagenet_weights_fail_fast_without_network_or_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2] Name or service not known"
        )

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.vgg16.file_utils.get_file", offline)
    start = time.time()
    with pytest.raises(FeatureWeightsError) as e:
        FeatureReconstruction("vgg16", weights="imagenet", image_size=32)
    assert time.time() - start < 30
    msg = str(e.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in msg and os.path.join(str(tmp_path), "models") in msg
    with pytest.raises(FeatureWeightsError, match="allow_random_weights"):
        FeatureReconstruction("vgg16", weights="random", image_size=32)
    with pytest.raises(FeatureWeightsError, match="not found"):
        FeatureReconstruction("vgg16", weights=str(tmp_path / "missing.h5"), image_size=32)


def test_weights_file_is_loaded(tmp_path):
    net = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg16.weights.h5")
    net.save_weights(path)
    feature = FeatureReconstruction("vgg16", weights=path, image_size=32)
    assert np.array_equal(
        feature.model.get_layer("block1_conv1").get_weights()[0], net.get_layer("block1_conv1").get_weights()[0]
    )


def test_segmentation_network_from_model_file(tmp_path):
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="decoder_stage2b_relu")(inp)
    keras.Model(inp, keras.layers.Conv2D(21, 1)(x)).save(tmp_path / "unet.keras")
    feature = FeatureReconstruction(
        "unet", ["decoder_stage2b_relu"], weights=str(tmp_path / "unet.keras"), image_size=32
    )
    x = tf.random.uniform([1, 32, 32, 3])
    assert float(feature(x, x)[0]) == 0.0
    with pytest.raises(FeatureWeightsError, match="segmentation model"):
        FeatureReconstruction("fpn", weights="imagenet", image_size=32)


@pytest.mark.parametrize(
    "seg, extra", [("shared_decoder", {"loss.present_classes_only": True}), ("separate_decoders", {})]
)
def test_segmentation_heads_train(seg, extra):
    size = 32
    lightness, ab = fixed_batch(size)
    mask = tf.cast(tf.random.stateless_uniform([4, size, size], [1, 2], 0, 3, tf.int32), tf.int32)
    overrides = {
        "data.kind": "voc", "data.train": "/unused", "data.image_size": size, "model.generator": "gorriz",
        "model.segmentation": seg, "model.n_classes": 3, "model.base_filters": 8, "model.num_downsamples": 4, **extra,
    }  # fmt: skip
    trainer = keras_colour.build_trainer(config_from_dict({}, overrides=[f"{k}={v}" for k, v in overrides.items()]))
    h = trainer.fit(tf.data.Dataset.from_tensors((lightness, ab, mask)).repeat(3), epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in h.values())
    assert ("g_segmentation" in h) == (seg == "separate_decoders")
    with pytest.raises(ValueError, match=r"laid out as \(L_n, ab_n\) \+ mask; got 2 item"):
        trainer.evaluate(tf.data.Dataset.from_tensors((lightness, ab)), verbose=0)


def test_segmentation_pretraining_schedule_gates_colour_terms_then_trains_both():
    from keras_colour.callbacks import SegmentationSchedule

    size = 32
    lightness, ab = fixed_batch(size)
    mask = tf.cast(tf.random.stateless_uniform([4, size, size], [1, 2], 0, 3, tf.int32), tf.int32)
    overrides = {
        "data.kind": "voc", "data.train": "/unused", "data.image_size": size, "model.segmentation": "separate_decoders",
        "model.n_classes": 3, "model.base_filters": 8, "model.num_downsamples": 4,
        "train.segmentation_pretrain_epochs": 2,
    }  # fmt: skip
    trainer = keras_colour.build_trainer(config_from_dict({}, overrides=[f"{k}={v}" for k, v in overrides.items()]))
    colour_head = [v for v in trainer.generator.trainable_variables if "gorriz_ab" in v.path]
    before = [v.numpy().copy() for v in colour_head]
    data = tf.data.Dataset.from_tensors((lightness, ab, mask)).repeat()
    h = trainer.fit(data, epochs=2, steps_per_epoch=2, verbose=0, callbacks=[SegmentationSchedule(2)]).history
    assert h["g_colour"] == [0.0, 0.0] and all(v > 0 for v in h["g_segmentation"])
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, colour_head))  # the colour decoder did not move
    h = trainer.fit(
        data, epochs=3, initial_epoch=2, steps_per_epoch=2, verbose=0, callbacks=[SegmentationSchedule(2)]
    ).history
    assert h["g_colour"][0] > 0
    assert not all(np.array_equal(b, v.numpy()) for b, v in zip(before, colour_head))


def test_mixed_precision_and_xla_train():
    for extra in (
        {"train.mixed_precision": "mixed_float16"},
        {"train.mixed_precision": "mixed_bfloat16", "train.jit_compile": True},
    ):
        # Seeded: an unlucky initialisation can overflow float16 activations in the very first forward pass (a
        # property of float16, which loss scaling does not cover; bfloat16 has float32's range).
        keras.utils.set_random_seed(0)
        trainer = keras_colour.build_trainer(family_config("gorriz3", **extra))
        if extra["train.mixed_precision"] == "mixed_float16":
            assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
        assert trainer.generator.get_layer("gorriz_down2_conv").compute_dtype != "float32"
        lightness, ab = fixed_batch()
        h = trainer.fit(tf.data.Dataset.from_tensors((lightness, ab)).repeat(2), epochs=1, verbose=0).history
        assert all(np.isfinite(v[-1]) for v in h.values())
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_non_finite_loss_stops_training_with_a_clear_message():
    from keras_colour.callbacks import StopOnNonFinite

    trainer = keras_colour.build_trainer(family_config("unet"))
    lightness, ab = fixed_batch()
    bad = tf.data.Dataset.from_tensors((lightness, ab * np.nan)).repeat(5)
    stop = StopOnNonFinite()
    h = trainer.fit(bad, epochs=3, verbose=0, callbacks=[stop]).history
    assert len(h["g_loss"]) == 1
    assert "'g_colour'" in stop.message or "'g_loss'" in stop.message
    assert "epoch 1, step 1" in stop.message


MIRRORED = """
import json, numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices('CPU')[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
import keras, keras_colour
from keras_colour.config import config_from_dict
ov = ['data.image_size=32', 'model.base_filters=8', 'model.max_filters=32', 'model.num_downsamples=4',
      'model.discriminator=multiscale', 'model.d_scales=2', 'loss.adversarial=lsgan', 'model.norm=bn']
config = config_from_dict({}, overrides=ov)
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
L = tf.constant(rng.uniform(-1, 1, (8, 32, 32, 1)), tf.float32)
ab = tf.constant(rng.uniform(-0.5, 0.5, (8, 32, 32, 2)), tf.float32)

def with_sgd(trainer):
    # SGD moves each weight by lr x its gradient, so the two runs' updates differ exactly as their
    # gradients do (Adam's first step is lr x sign(g): a near-zero gradient's sign is noise).
    trainer.g_optimizer, trainer.d_optimizer = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)
    trainer.g_optimizer.build(trainer.generator.trainable_variables)
    trainer.d_optimizer.build(trainer.discriminator.trainable_variables)
    return trainer

one = with_sgd(keras_colour.build_trainer(config))
g0, d0 = one.generator.get_weights(), one.discriminator.get_weights()
r1 = one.fit(tf.data.Dataset.from_tensors((L, ab)), epochs=1, verbose=0).history
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
two = keras_colour.build_trainer(config, strategy=strategy)
with strategy.scope():
    with_sgd(two)
two.generator.set_weights(g0); two.discriminator.set_weights(d0)
r2 = two.fit(tf.data.Dataset.from_tensors((L, ab)), epochs=1, verbose=0).history
def updates(model, start):
    return [w - w0 for w, w0 in zip(model.get_weights(), start)]
u1 = updates(one.generator, g0) + updates(one.discriminator, d0)
u2 = updates(two.generator, g0) + updates(two.discriminator, d0)
print(json.dumps({'replicas': strategy.num_replicas_in_sync, 'one': {k: v[0] for k, v in r1.items()},
                  'two': {k: v[0] for k, v in r2.items()},
                  'largest_update': max(float(np.max(np.abs(a))) for a in u1),
                  'update_diff': max(float(np.max(np.abs(a - b))) for a, b in zip(u1, u2))}))
"""


def test_mirrored_strategy_matches_one_device():
    import json

    result = python_subprocess(MIRRORED)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert set(out["one"]) == set(out["two"])
    for key, value in out["one"].items():
        assert out["two"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    # The same update was applied: equal up to float32 summation order, relative to the update's size.
    assert out["largest_update"] > 1e-4
    assert out["update_diff"] < 1e-3 * out["largest_update"]


def _cpu_seconds(pid):
    """User + system CPU time of a process, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path, demo_cache):
    import json

    out = tmp_path / "run"
    overrides = tiny_overrides(
        **{"output_dir": str(out), "train.epochs": 3, "train.steps_per_epoch": 60, "train.verbose": 0}
    )
    cmd = [
        sys.executable,
        os.path.join(ROOT, "experiments", "run.py"),
        os.path.join(ROOT, "experiments", "quickstart.yaml"),
        "--stage",
        "train",
    ]
    for o in overrides:
        cmd += ["--set", o]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_COLOUR_CACHE=demo_cache)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    state = out / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["completed_epochs"] == 1:
            break
        if proc.poll() is not None:
            pytest.fail("training ended before it could be killed: " + proc.stdout.read().decode()[-2000:])
        time.sleep(0.02)
    # Kill once the process has done real work in epoch 2 (CPU time, not a fixed wall-clock wait).
    start = _cpu_seconds(proc.pid)
    while _cpu_seconds(proc.pid) < start + 0.3 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["completed_epochs"] == 1, "the kill came too late to be mid-epoch"

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert "1 epochs completed, optimiser step 60" in log  # optimiser state restored, not restarted
    assert json.loads(state.read_text()) == {"completed_epochs": 3, "total_epochs": 3, "finished": True}
    epochs = [line.split(",")[0] for line in (out / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]  # epoch 2 ran once, from its start (history.csv counts from 1)

    from keras_colour.checkpoint import TrainingCheckpoint
    from keras_colour.run_folder import RunFolder

    trainer = keras_colour.build_trainer(RunFolder(out).load_config())
    assert TrainingCheckpoint(trainer, str(out / "checkpoints")).restore() == 3
    assert int(trainer.g_optimizer.iterations.numpy()) == 180 and int(trainer.d_optimizer.iterations.numpy()) == 180
    # A finished run is not overwritten silently.
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert again.returncode == 2 and "already holds a finished run" in again.stderr


def test_fast_upsampling_off_trains_to_the_same_weights_through_fit():
    lightness, ab = fixed_batch()
    data = tf.data.Dataset.from_tensors((lightness, ab)).repeat(2)
    weights = []
    for fast in (True, False):
        keras.utils.set_random_seed(5)
        trainer = keras_colour.build_trainer(family_config("gorriz3", **{"train.fast_upsampling": fast}))
        lowres = [layer for layer in trainer.training_generator.layers if type(layer).__name__ == "LowResolutionUpConv"]
        assert bool(lowres) == fast
        # SGD: the update is linear in the gradient, so equal functions give equal weights.
        trainer.g_optimizer, trainer.d_optimizer = keras.optimizers.SGD(0.01), keras.optimizers.SGD(0.01)
        history = trainer.fit(data, epochs=1, verbose=0).history
        assert np.isfinite(history["g_loss"][0])
        weights.append(trainer.generator.get_weights())
    scale = max(float(np.max(np.abs(w))) for w in weights[1])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-4 * scale)


@pytest.mark.slow
def test_deterministic_runs_repeat_bit_for_bit(tmp_path, demo_cache):
    """Through the command line, which also turns oneDNN off (its CPU sums depend on thread timing)."""
    from keras_colour.data import build_demo_dataset

    build_demo_dataset(None, 16, 42)  # tiny_overrides' demo_train_crops and the seed, in KERAS_COLOUR_CACHE
    overrides = tiny_overrides(**{"train.deterministic": True, "train.steps_per_epoch": 3, "train.sample_images": 0})
    weights = []
    for name in ("a", "b"):
        out = tmp_path / name
        cmd = [sys.executable, "-m", "keras_colour.cli", "train", os.path.join(ROOT, "experiments", "quickstart.yaml"),
               "--stage", "train", "--set", f"output_dir={out}"]  # fmt: skip
        for o in overrides:
            cmd += ["--set", o]
        env = dict(os.environ, KERAS_COLOUR_CACHE=demo_cache)
        env.pop("TF_ENABLE_ONEDNN_OPTS", None)
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "oneDNN was on" not in result.stderr
        weights.append(keras.models.load_model(out / "generator.keras").get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_eval_max_images_evaluates_exactly_that_many(tmp_path, demo_cache):
    import json

    from keras_colour.config import load_config
    from keras_colour.experiment import evaluate_run, train

    overrides = tiny_overrides(**{"output_dir": str(tmp_path / "run"), "train.eval_max_images": 3})
    train(load_config(os.path.join(ROOT, "experiments", "quickstart.yaml"), overrides))
    assert evaluate_run(str(tmp_path / "run"))["images"] == 3
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["images"] == 3
    assert evaluate_run(str(tmp_path / "run"), max_images=5)["images"] == 5

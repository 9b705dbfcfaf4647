"""Architectures against the BBC code's layer lists (docs/fidelity.md), built at full and small size."""

import json

import keras
import numpy as np
import pytest

from helpers import python_subprocess
from keras_colour.models import build_discriminator, build_generator
from keras_colour.models.export import plain_generator
from keras_colour.models.layers import SampleInstanceNormalization


def conv_params(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


BN = 4  # gamma, beta, moving mean, moving variance per channel


def unet_params(downs, ups, out_channels, bias, first_norm=False):
    """Parameter count of a U-Net from its layer list (docs/fidelity.md): (filters, has_norm) down, filters up."""
    total, cin, skips = 0, 1, []
    for f, norm in downs:
        total += conv_params(4, cin, f, bias) + (BN * f if norm else 0)
        cin = f
        skips.append(f)
    for f, skip in zip(ups, reversed(skips[:-1])):
        total += conv_params(4, cin, f, bias) + BN * f
        cin = f + skip
    return total + conv_params(4, cin, out_channels, True)


GORRIZ_DOWNS = [(64, False), (128, True), (256, True), (512, True), (512, True), (512, True), (512, True)]
GORRIZ_UPS = [512, 512, 512, 256, 128, 64]
PIX2PIX_DOWNS = [(64, False), (128, True), (256, True)] + [(512, True)] * 5
PIX2PIX_UPS = [512, 512, 512, 512, 256, 128, 64]


def test_gorriz_generator_matches_its_layer_list():
    g = build_generator("gorriz")
    assert g.output_shape == (None, 256, 256, 2)
    assert g.count_params() == unet_params(GORRIZ_DOWNS, GORRIZ_UPS, 2, bias=True)
    downs = [g.get_layer(f"gorriz_down{i}_conv") for i in range(1, 8)]
    assert [layer.filters for layer in downs] == [f for f, _ in GORRIZ_DOWNS]
    assert all(layer.kernel_size == (4, 4) and layer.strides == (2, 2) for layer in downs)
    ups = [g.get_layer(f"gorriz_up{i}_conv") for i in range(1, 7)]
    assert [layer.filters for layer in ups] == GORRIZ_UPS
    assert all(layer.kernel_size == (4, 4) and layer.strides == (1, 1) for layer in ups)
    assert g.get_layer("gorriz_down7_lrelu").output.shape[1:] == (2, 2, 512)  # bottleneck
    assert not any(isinstance(layer, (keras.layers.Dropout, keras.layers.Conv2DTranspose)) for layer in g.layers)
    assert "gorriz_down1_bn" not in [layer.name for layer in g.layers]  # no norm in the first block
    assert g.get_layer("gorriz_ab").activation.__name__ == "tanh"


def test_pix2pix_generator_matches_its_layer_list():
    g = build_generator("pix2pix")
    assert g.output_shape == (None, 256, 256, 2)
    assert g.count_params() == unet_params(PIX2PIX_DOWNS, PIX2PIX_UPS, 2, bias=False)
    assert g.get_layer("pix2pix_down8_lrelu").output.shape[1:] == (1, 1, 512)
    dropouts = [layer.name for layer in g.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == ["pix2pix_up1_dropout", "pix2pix_up2_dropout", "pix2pix_up3_dropout"]
    assert all(isinstance(g.get_layer(f"pix2pix_up{i}_conv"), keras.layers.Conv2DTranspose) for i in range(1, 8))
    assert build_generator("unet").count_params() == g.count_params()  # the thesis's baseline is the same net


def test_ibn_uses_instance_norm_only_in_last_up_block():
    g = build_generator("gorriz", norm="ibn", **{"image_size": 64, "num_downsamples": 5, "base_filters": 8})
    names = [layer.name for layer in g.layers]
    assert [n for n in names if n.endswith("_in")] == ["gorriz_up4_in"]
    assert isinstance(g.get_layer("gorriz_up4_in"), keras.layers.GroupNormalization)
    assert g.get_layer("gorriz_up4_in").groups == 8  # one group per channel: per-channel IN
    whole = build_generator(
        "gorriz", norm="in", instance_norm="sample", image_size=64, num_downsamples=5, base_filters=8
    )
    layer = whole.get_layer("gorriz_down2_in")  # the BBC code's whole-sample IN: one scalar gamma and beta
    assert isinstance(layer, SampleInstanceNormalization) and layer.gamma.shape == (1,) and layer.beta.shape == (1,)


def test_multiscale_discriminator_matches_its_layer_list():
    d = build_discriminator("multiscale", scales=3)
    assert [tuple(s) for s in d.output_shape] == [(None, 16, 16, 1), (None, 8, 8, 1), (None, 4, 4, 1)]
    per_scale = conv_params(4, 3, 64) + sum(
        conv_params(4, a, b) + BN * b for a, b in [(64, 128), (128, 256), (256, 512)]
    )
    per_scale += conv_params(4, 512, 1)
    assert d.count_params() == 3 * per_scale
    assert build_discriminator("multiscale", scales=1).output_shape == (None, 16, 16, 1)
    ibn = build_discriminator("multiscale", norm="ibn", scales=1, image_size=64)
    names = [layer.name for layer in ibn.layers]
    assert (
        "multiscale_s1_down2_in" in names
        and "multiscale_s1_down3_bn" in names
        and "multiscale_s1_down1_bn" not in names
    )


def test_patchgan_matches_its_layer_list():
    d = build_discriminator("patchgan")
    assert d.output_shape == (None, 30, 30, 1)
    expected = conv_params(4, 3, 64, False) + sum(
        conv_params(4, a, b, False) + BN * b for a, b in [(64, 128), (128, 256), (256, 512)]
    )
    expected += conv_params(4, 512, 1, True)
    assert d.count_params() == expected


SMALL = dict(image_size=64, base_filters=8, num_downsamples=5)


@pytest.mark.parametrize("kind", ["gorriz", "pix2pix", "unet"])
def test_spectral_norm_wraps_every_convolution(kind):
    g = build_generator(kind, spectral_norm=True, **SMALL)
    convs = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    assert not any(isinstance(layer, convs) for layer in g.layers)  # no bare convolution at top level
    wrapped = [layer for layer in g.layers if isinstance(layer, keras.layers.SpectralNormalization)]
    assert len(wrapped) == 5 + 4 + 1 and all(isinstance(w.layer, convs) for w in wrapped)
    d = build_discriminator("multiscale", spectral_norm=True, scales=3, image_size=64, base_filters=8)
    assert not any(isinstance(layer, convs) for layer in d.layers)
    assert sum(isinstance(layer, keras.layers.SpectralNormalization) for layer in d.layers) == 3 * 5


@pytest.mark.parametrize("kind", ["gorriz", "unet"])
def test_segmentation_variants(kind):
    shared = build_generator(kind, segmentation="shared_decoder", n_classes=5, **SMALL)
    assert shared.output_shape == (None, 64, 64, 10)
    sep = build_generator(kind, segmentation="separate_decoders", n_classes=5, **SMALL)
    assert sep.output["ab"].shape == (None, 64, 64, 2) and sep.output["segmentation"].shape == (None, 64, 64, 5)
    out = sep(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 1)).astype("float32"))
    assert np.abs(out["ab"]).max() <= 1.0 and np.abs(out["segmentation"]).max() > 0
    # one encoder, two decoders
    names = [layer.name for layer in sep.layers]
    assert sum(n.endswith("down1_conv") for n in names) == 1
    assert f"{kind}_colour_up1_conv" in names and f"{kind}_seg_up1_conv" in names


def test_outputs_in_tanh_range():
    g = build_generator("gorriz", **SMALL)
    out = g(np.random.default_rng(0).normal(0, 5, (2, 64, 64, 1)).astype("float32")).numpy()
    assert out.shape == (2, 64, 64, 2) and -1 <= out.min() and out.max() <= 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: build_generator("resnet"), r"generator kind 'resnet'.*\['gorriz', 'pix2pix', 'unet'\]"),
        (lambda: build_generator("gorriz", norm="layer", **SMALL), r"norm 'layer'.*\['bn', 'in', 'ibn', 'none'\]"),
        (lambda: build_discriminator("multiscale", scales=0), r"scales.*1, 2 or 3.*scales=0"),
        (lambda: build_generator("gorriz", image_size=65), r"image_size=65 cannot be halved"),
        (lambda: build_generator("gorriz", image_size=64), r"num_downsamples <= 6"),
        (lambda: build_generator("gorriz", filterz=3), r"Unknown option\(s\) \['filterz'\].*Accepted options"),
        (lambda: build_generator("gorriz", segmentation="both", **SMALL), r"segmentation 'both'"),
        (lambda: build_discriminator("patchgan", image_size=63), r"image_size=63"),
    ],
)
def test_bad_options_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


ROUND_TRIP_CASES = {
    "gorriz_bn": ("g", "gorriz", dict(norm="bn")),
    "gorriz_in_sample": ("g", "gorriz", dict(norm="in", instance_norm="sample")),
    "gorriz_ibn_sn": ("g", "gorriz", dict(norm="ibn", spectral_norm=True)),
    "gorriz_ibn_bbc_sn": ("g", "gorriz", dict(norm="ibn", spectral_norm="bbc", instance_norm="sample")),
    "pix2pix": ("g", "pix2pix", {}),
    "unet": ("g", "unet", {}),
    "gorriz_shared": ("g", "gorriz", dict(segmentation="shared_decoder", n_classes=4)),
    "unet_shared": ("g", "unet", dict(segmentation="shared_decoder", n_classes=4)),
    "gorriz_separate": ("g", "gorriz", dict(segmentation="separate_decoders", n_classes=4)),
    "unet_separate": ("g", "unet", dict(segmentation="separate_decoders", n_classes=4)),
    "patchgan": ("d", "patchgan", dict(image_size=64, base_filters=8)),
    "multiscale": ("d", "multiscale", dict(image_size=64, base_filters=8, scales=3, norm="ibn", spectral_norm=True)),
}


def test_every_kind_round_trips_through_keras_file_without_this_package(tmp_path):
    rng = np.random.default_rng(0)
    lightness = rng.uniform(-1, 1, (2, 64, 64, 1)).astype("float32")
    ab = rng.uniform(-1, 1, (2, 64, 64, 2)).astype("float32")
    np.save(tmp_path / "L.npy", lightness)
    np.save(tmp_path / "ab.npy", ab)
    for name, (role, kind, options) in ROUND_TRIP_CASES.items():
        if role == "g":  # saved as the run folder saves it: built-in layers only, spectral norm folded in
            model = plain_generator(build_generator(kind, **{**SMALL, **options}))
            out = model(lightness, training=False)
        else:
            model = build_discriminator(kind, **options)
            out = model([lightness, ab], training=False)
        model.save(tmp_path / f"{name}.keras")
        flat = keras.tree.flatten(out)
        np.savez(tmp_path / f"{name}.npz", *[np.asarray(o) for o in flat])
    code = f"""
import json, sys, numpy as np, keras
d = {str(tmp_path)!r}
L, ab = np.load(d + '/L.npy'), np.load(d + '/ab.npy')
worst = {{}}
for name, role in {json.dumps({k: v[0] for k, v in ROUND_TRIP_CASES.items()})}.items():
    m = keras.models.load_model(d + '/' + name + '.keras', safe_mode=True)
    out = m(L, training=False) if role == 'g' else m([L, ab], training=False)
    exp = np.load(d + '/' + name + '.npz')
    got = keras.tree.flatten(out)
    worst[name] = max(float(np.max(np.abs(np.asarray(g) - exp[f'arr_{{i}}']))) for i, g in enumerate(got))
assert not any(k.startswith('keras_colour') for k in sys.modules), 'keras_colour was imported'
print(json.dumps(worst))
"""
    result = python_subprocess(code)
    assert result.returncode == 0, result.stderr[-3000:]
    worst = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(worst) == set(ROUND_TRIP_CASES)
    assert max(worst.values()) <= 1e-6, worst

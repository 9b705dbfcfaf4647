"""The main job end to end: YAML files, run.py, evaluate and colourise."""

import csv
import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import skimage.color
from PIL import Image

from helpers import ROOT, tiny_overrides
from keras_colour.config import load_config
from keras_colour.models import build_discriminator, build_generator, discriminator_options, generator_options

EXPERIMENTS = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.yaml")))

GORRIZ_VARIANTS = ["bn", "in", "bn_sn", "in_sn", "ibn", "bn_sn_md", "ibn_md"]


def test_every_thesis_experiment_has_a_yaml():
    names = {os.path.basename(p)[:-5] for p in EXPERIMENTS}
    expected = {
        "unet_l1",
        "pix2pix",
        "gorriz",
        "vgg_block3",
        "resnet50",
        "unet_feature",
        "fpn_feature",
        "seg_shared_decoder",
        "seg_shared_decoder_gan",
        "seg_separate_decoders",
        "quickstart",
    } | {f"gorriz_exp{i}_{v}" for i, v in enumerate(GORRIZ_VARIANTS, 1)}
    assert expected <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: os.path.basename(p))
def test_yaml_loads_validates_and_builds_small(path, tmp_path, monkeypatch):
    for var in ("IMAGENET_DIR", "VOC_DIR"):
        monkeypatch.setenv(var, str(tmp_path))
    # The segmentation feature networks are whole .keras models: supply tiny ones.
    for var, layer in (("UNET_FEATURE_MODEL", "decoder_stage2b_relu"), ("FPN_FEATURE_MODEL", "fpn_stage_p3_add")):
        inp = keras.Input((64, 64, 3))
        model = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same", name=layer)(inp))
        model.save(tmp_path / f"{var}.keras")
        monkeypatch.setenv(var, str(tmp_path / f"{var}.keras"))
    config = load_config(
        path, ["data.image_size=64", "model.base_filters=4", "model.max_filters=16", "model.num_downsamples=5"]
    )
    assert config.name == os.path.basename(path)[:-5]
    g = build_generator(config.model.generator, 64, **generator_options(config.model))
    assert g.input_shape == (None, 64, 64, 1)
    if config.model.discriminator != "none":
        build_discriminator(config.model.discriminator, 64, **discriminator_options(config.model))
    if config.loss.feature is not None:
        from keras_colour.models.perceptual import FeatureReconstruction

        f = config.loss.feature
        weights = f.weights if f.backbone in ("unet", "fpn") else "random"
        FeatureReconstruction(f.backbone, f.layers, weights, allow_random_weights=True, image_size=64)
    unscaled = load_config(path)
    assert unscaled.data.image_size == 256 or unscaled.data.kind == "demo"


def _run(args, **kw):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900, **kw)


@pytest.mark.slow
def test_run_py_end_to_end_then_evaluate_two_runs(tmp_path, demo_cache):
    runs = []
    for name, extra in (
        ("unet", {"model.generator": "unet", "model.discriminator": "none", "loss.adversarial": "none"}),
        ("gorriz", {}),
    ):
        out = tmp_path / name
        sets = tiny_overrides(output_dir=str(out), name=name, **{"train.epochs": 2}, **extra)
        result = _run(
            [
                os.path.join("experiments", "run.py"),
                os.path.join("experiments", "quickstart.yaml"),
                *sum((["--set", s] for s in sets), []),
            ]
        )
        assert result.returncode == 0, result.stderr[-3000:]
        for item in (
            "config.yaml",
            "generator.keras",
            "history.csv",
            "loss_curves.png",
            "metrics.json",
            "histograms.npz",
            "histograms.png",
            "state.json",
        ):
            assert (out / item).exists(), item
        assert sorted(os.listdir(out / "samples")) == ["epoch_001.png", "epoch_002.png"]
        assert os.listdir(out / "logs") and glob.glob(str(out / "checkpoints" / "ckpt-2*"))
        metrics = json.loads((out / "metrics.json").read_text())
        assert 0 <= metrics["js_a"] <= 1 and -1 <= metrics["ssim"] <= 1 and metrics["psnr"] > 0
        with open(out / "history.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 2 and "g_colour" in rows[0] and "val_g_colour" in rows[0]
        assert [r["epoch"] for r in rows] == ["1", "2"]  # as the log and samples/epoch_NNN.png count
        assert not (out / ".lock").exists()  # a finished run leaves no lock behind
        hist = np.load(out / "histograms.npz")
        assert hist["real_a"].sum() == metrics["images"] * 32 * 32
        runs.append(str(out))
    grid = np.asarray(Image.open(os.path.join(runs[0], "samples", "epoch_002.png")))
    # 2 images, input | prediction | truth, 32x32 tiles upscaled x5 to 160 px, under a 24 px header of titles
    assert grid.shape == (24 + 2 * 160, 3 * 160, 3)
    assert grid[:24].min() < 128 and np.median(grid[:24]) == 255  # dark title text on white

    report = tmp_path / "report"
    result = _run(["-m", "keras_colour.cli", "evaluate", *runs, "--output", str(report)])
    assert result.returncode == 0, result.stderr[-3000:]
    with open(report / "comparison.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["unet", "gorriz"]
    assert {"js_a", "js_b", "kl_a", "kl_b", "psnr", "ssim"} <= set(rows[0])
    md = (report / "comparison.md").read_text()
    assert "| Model | JS a | JS b | KL a | KL b | PSNR (RGB, dB) | SSIM |" in md
    assert (report / "histograms.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "generator.keras")
    keras.utils.set_random_seed(3)
    build_generator("gorriz", image_size=64, base_filters=8, num_downsamples=5).save(path)
    return path


def _lightness(rgb8):
    return skimage.color.rgb2lab(rgb8)[..., 0]


def test_colourise_full_resolution_keeps_lightness(tmp_path, generator_file, photos):
    from keras_colour.colourise import colourise_paths

    big = np.asarray(Image.fromarray(photos[0]).resize((1000, 750), Image.BICUBIC))
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(big).save(src / "photo.jpg", quality=92)
    gray = photos[1][..., 0]
    Image.fromarray(gray).save(src / "gray.png")
    model = keras.models.load_model(generator_file)
    written, skipped = colourise_paths(
        model, [str(src / "photo.jpg"), str(src / "gray.png")], str(tmp_path / "out"), progress=False
    )
    assert not skipped and len(written) == 2
    out = np.asarray(Image.open(tmp_path / "out" / "photo.png").convert("RGB"))
    assert out.shape == (750, 1000, 3)
    original = np.asarray(Image.open(src / "photo.jpg").convert("RGB"))
    assert np.max(np.abs(_lightness(out) - _lightness(original))) <= 0.5
    coloured = np.asarray(Image.open(tmp_path / "out" / "gray.png"))
    assert coloured.ndim == 3 and coloured.shape[:2] == gray.shape
    chroma = np.abs(skimage.color.rgb2lab(coloured)[..., 1:]).max()
    assert chroma > 1.0  # a colour image, not gray
    gray_l = skimage.color.rgb2lab(np.repeat(gray[..., None], 3, -1))[..., 0]
    assert np.max(np.abs(_lightness(coloured) - gray_l)) <= 0.5


def test_colourise_cli_on_folder_with_broken_file(tmp_path, generator_file, photos):
    src = tmp_path / "archive"
    (src / "reel1").mkdir(parents=True)
    Image.fromarray(photos[2]).save(src / "reel1" / "frame1.png")
    Image.fromarray(photos[0]).save(src / "frame0.jpg")
    (src / "reel1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = _run(
        ["-m", "keras_colour.cli", "colourise", "--model", generator_file, str(src), "--output", str(tmp_path / "out")]
    )
    assert result.returncode == 1  # the skipped file makes the exit code non-zero
    assert "broken.jpg" in result.stderr and "skipped 1" in result.stdout
    assert (tmp_path / "out" / "frame0.png").exists() and (tmp_path / "out" / "reel1" / "frame1.png").exists()
    assert os.path.exists(src / "frame0.jpg")  # inputs untouched


def test_colourise_refuses_to_overwrite_input(tmp_path, generator_file, photos):
    from keras_colour.colourise import colourise_paths

    Image.fromarray(photos[0]).save(tmp_path / "a.png")
    before = (tmp_path / "a.png").read_bytes()
    with pytest.raises(ValueError, match="overwrite"):
        colourise_paths(
            keras.models.load_model(generator_file), [str(tmp_path / "a.png")], str(tmp_path), progress=False
        )
    assert (tmp_path / "a.png").read_bytes() == before

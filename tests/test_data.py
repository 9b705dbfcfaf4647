import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_colour import colour
from keras_colour.data import (
    SkipLog,
    build_datasets,
    build_demo_dataset,
    check_decodable,
    list_images,
    make_dataset,
    read_image_list,
    split_per_class,
    voc_split,
)  # fmt: skip
from keras_colour.data.images import decode_to_rgb8


def _write_mixed_folder(root, photo):
    os.makedirs(root / "cls", exist_ok=True)
    Image.fromarray(photo).save(root / "cls" / "good.jpg", quality=95)
    data = (root / "cls" / "good.jpg").read_bytes()
    (root / "cls" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "cls" / "text.jpg").write_text("this is not an image")
    sixteen = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    Image.fromarray(sixteen).save(root / "cls" / "sixteen.png")
    Image.fromarray(photo[..., 0]).save(root / "cls" / "gray.png")
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 7, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(root / "cls" / "rgba.png")
    Image.fromarray(np.array([[[10, 200, 30]]], np.uint8)).save(root / "cls" / "one.png")
    Image.fromarray(photo).save(root / "cls" / "bitmap.bmp")
    Image.fromarray(photo).save(root / "cls" / "anim.gif")
    Image.fromarray(photo).save(root / "cls" / "web.webp")
    (root / "cls" / "notes.txt").write_text("ignored: not an image extension")


@pytest.fixture
def mixed_folder(tmp_path, photos):
    photo = np.asarray(Image.fromarray(photos[0]).resize((48, 40)))
    _write_mixed_folder(tmp_path, photo)
    return tmp_path


def test_bad_files_are_skipped_by_name_and_counted(mixed_folder, caplog):
    paths, labels = list_images(str(mixed_folder))
    assert len(paths) == 10 and set(labels) == {"cls"}
    log = SkipLog()
    with caplog.at_level(logging.WARNING):
        ds = make_dataset(paths, image_size=16, batch_size=3, training=False, skip_log=log)
        batches = list(ds)
    images = sum(int(b[0].shape[0]) for b in batches)
    assert images == 8  # every decodable file: jpg, 16-bit, gray, rgba, 1x1, bmp, gif, webp
    assert log.count == 2
    assert {os.path.basename(p) for p in log.skipped} == {"truncated.jpg", "text.jpg"}
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "truncated.jpg" in warned and "text.jpg" in warned
    # One warning per file, even when the pipeline is iterated again.
    list(ds)
    assert log.count == 2


def test_decode_conversions(mixed_folder):
    sixteen = decode_to_rgb8(str(mixed_folder / "cls" / "sixteen.png"))
    assert sixteen.dtype == np.uint8 and sixteen.shape == (30, 40, 3)
    assert sixteen.max() == 255 and sixteen.min() == 0  # 16-bit scaled to 8-bit, not truncated
    gray = decode_to_rgb8(str(mixed_folder / "cls" / "gray.png"))
    assert gray.shape[-1] == 3 and np.array_equal(gray[..., 0], gray[..., 2])
    rgba = decode_to_rgb8(str(mixed_folder / "cls" / "rgba.png"))
    assert rgba.shape[-1] == 3
    assert decode_to_rgb8(str(mixed_folder / "cls" / "one.png")).tolist() == [[[10, 200, 30]]]


def test_batches_have_documented_shapes_dtypes_ranges(demo_cache):
    train, test = build_demo_dataset(train_crops=16)
    paths, _ = list_images(train)
    ds = make_dataset(paths, image_size=32, batch_size=4, training=True)
    lightness, ab = next(iter(ds))
    assert lightness.shape == (4, 32, 32, 1) and ab.shape == (4, 32, 32, 2)
    assert lightness.dtype == tf.float32 and ab.dtype == tf.float32
    assert -1.0 - 1e-6 <= lightness.numpy().min() and lightness.numpy().max() <= 1.0 + 1e-6
    assert np.abs(ab.numpy()).max() <= 1.2  # |ab| <= ~128 for sRGB: about [-1, 1] after /110
    rgb = next(iter(make_dataset(paths, image_size=32, batch_size=4, training=True, lab_on_device=True)))
    assert rgb.shape == (4, 32, 32, 3) and 0.0 <= rgb.numpy().min() and rgb.numpy().max() <= 1.0


def test_cpu_and_on_device_lab_paths_give_identical_batches(demo_cache):
    train, _ = build_demo_dataset(train_crops=16)
    paths, _ = list_images(train)
    cpu = list(make_dataset(paths, image_size=32, batch_size=4, training=True, seed=3))
    dev = list(make_dataset(paths, image_size=32, batch_size=4, training=True, seed=3, lab_on_device=True))
    assert len(cpu) == len(dev) == 4
    step = tf.function(colour.rgb_to_lab_normalized, jit_compile=True)  # as inside an XLA train step
    for (lightness, ab), rgb in zip(cpu, dev):
        l2, ab2 = step(rgb)
        np.testing.assert_allclose(lightness.numpy(), l2.numpy(), atol=1e-5)
        np.testing.assert_allclose(ab.numpy(), ab2.numpy(), atol=1e-5)


def test_seed_makes_pipeline_deterministic(demo_cache):
    train, _ = build_demo_dataset(train_crops=16)
    paths, _ = list_images(train)
    a = next(iter(make_dataset(paths, image_size=32, batch_size=8, training=True, seed=1)))[1].numpy()
    b = next(iter(make_dataset(paths, image_size=32, batch_size=8, training=True, seed=1)))[1].numpy()
    c = next(iter(make_dataset(paths, image_size=32, batch_size=8, training=True, seed=2)))[1].numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_checking_the_data_leaves_the_training_order_alone(demo_cache):
    """`check_decodable` on the probe, as `train` does, then the same batches as a bundle never checked.

    Checking on the training pipeline itself advanced its shuffle's shared seed by a thread-timing-dependent
    number of restarts (4 batches a pass here), so the batch order came out one of two ways at random.
    """
    from keras_colour.config import config_from_dict

    config = config_from_dict(
        {
            "data": {"kind": "demo", "image_size": 32, "batch_size": 4, "demo_train_crops": 16},
            "model": {"num_downsamples": 4},
        }
    )

    def batches(check):
        tf.keras.utils.set_random_seed(config.seed)
        data = build_datasets(config, repeat_train=True)
        if check:
            for _ in range(3):
                check_decodable(data.train_probe, data.train_paths, data.skip_log, "training", 4)
        return [ab.numpy() for _, ab in data.train.take(10)]  # 2.5 passes over the 16 images

    checked, unchecked = batches(True), batches(False)
    for a, b in zip(checked, unchecked, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(checked[0], checked[4])  # the second pass is shuffled afresh


def test_nearest_resize_option_keeps_original_values(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, :2] = [255, 0, 0]
    img[:, 2:] = [0, 0, 255]
    Image.fromarray(img).save(tmp_path / "x.png")
    rgb = next(
        iter(
            make_dataset(
                [str(tmp_path / "x.png")], image_size=8, batch_size=1, resize_method="nearest", lab_on_device=True
            )
        )
    )
    values = {tuple(v) for v in np.round(rgb.numpy().reshape(-1, 3) * 255).astype(int)}
    assert values == {(255, 0, 0), (0, 0, 255)}
    smooth = next(iter(make_dataset([str(tmp_path / "x.png")], image_size=8, batch_size=1, lab_on_device=True)))
    assert len({tuple(v) for v in np.round(smooth.numpy().reshape(-1, 3) * 255).astype(int)}) > 2


def test_split_per_class_is_seeded_and_disjoint():
    paths = [f"c{c}/img{i}.jpg" for c in range(5) for i in range(20)]
    labels = [p.split("/")[0] for p in paths]
    train, test = split_per_class(paths, labels, 10, seed=42)
    assert len(test) == 50 and len(train) == 50 and not set(train) & set(test)
    assert all(sum(p.startswith(f"c{c}/") for p in test) == 10 for c in range(5))
    assert split_per_class(paths, labels, 10, seed=42) == (train, test)
    assert split_per_class(paths, labels, 10, seed=7)[1] != test


def test_image_list_reader(tmp_path, photos):
    (tmp_path / "a").mkdir()
    Image.fromarray(photos[0]).save(tmp_path / "a" / "x.png")
    (tmp_path / "list.txt").write_text("# comment\na/x.png\n\n")
    paths, labels = read_image_list(str(tmp_path / "list.txt"))
    assert paths == [str(tmp_path / "a" / "x.png")] and labels == ["a"]


def test_demo_dataset_has_disjoint_train_and_test(demo_cache):
    train, test = build_demo_dataset(train_crops=16)
    tr, tr_labels = list_images(train)
    te, _ = list_images(test)
    assert len(tr) == 16 and len(te) >= 8 and len(set(tr_labels)) >= 4
    hashes = lambda ps: {np.asarray(Image.open(p)).tobytes() for p in ps}  # noqa: E731
    assert not hashes(tr) & hashes(te)
    # Built once, then reused.
    assert build_demo_dataset(train_crops=16) == (train, test)


def _write_voc(root, n=4, size=24):
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        os.makedirs(root / d, exist_ok=True)
    ids = [f"2007_{i:06d}" for i in range(n)]
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)
    for i in ids:
        img = np.zeros((size, size, 3), np.uint8)
        img[:, : size // 2] = [220, 30, 30]  # red left half
        img[:, size // 2 :] = [30, 30, 220]  # blue right half
        Image.fromarray(img).save(root / "JPEGImages" / f"{i}.jpg", quality=100)
        mask = np.zeros((size, size), np.uint8)
        mask[:, : size // 2] = 1
        mask[:, size // 2 :] = 2
        mask[0, :] = 255  # boundary / ignore
        m = Image.fromarray(mask, "P")
        m.putpalette(palette)
        m.save(root / "SegmentationClass" / f"{i}.png")
    for split in ("train", "val"):
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return ids


def test_voc_reader_flips_image_and_mask_together(tmp_path):
    _write_voc(tmp_path, n=8)
    images, masks = voc_split(str(tmp_path), "train")
    assert len(images) == 8 and masks[0].endswith(".png")
    ds = make_dataset(images, image_size=16, batch_size=8, training=True, mask_paths=masks, seed=0, lab_on_device=True)
    rgb, mask = next(iter(ds))
    assert mask.dtype == tf.int32 and mask.shape == (8, 16, 16)
    assert set(np.unique(mask.numpy())) == {1, 2, 255}
    red_is_class1 = []
    for k in range(8):
        left_red = rgb.numpy()[k, 8, 2, 0] > rgb.numpy()[k, 8, 2, 2]
        left_class = mask.numpy()[k, 8, 2]
        red_is_class1.append((left_class == 1) == left_red)
        assert mask.numpy()[k, 0, 5] == 255
    assert all(red_is_class1)
    lab = next(iter(make_dataset(images, image_size=16, batch_size=2, mask_paths=masks)))
    assert len(lab) == 3 and lab[0].shape == (2, 16, 16, 1)


def test_voc_missing_split_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageSets/Segmentation"):
        voc_split(str(tmp_path), "train")


def test_build_datasets_from_config(demo_cache):
    from keras_colour.config import config_from_dict

    config = config_from_dict(
        {
            "data": {"kind": "demo", "image_size": 32, "batch_size": 4, "demo_train_crops": 16},
            "model": {"num_downsamples": 4},
        }
    )
    data = build_datasets(config)
    assert data.steps_per_epoch == 4 and len(data.test_paths) >= 8
    assert "train: 16 images" in data.summary()


def _jpeg(path, rgb, **save):
    Image.fromarray(rgb).save(path, **save)
    return str(path)


def test_plain_files_take_the_native_route_and_the_rest_pillow(tmp_path, photos):
    from keras_colour.data.images import BROKEN, NATIVE_JPEG, NATIVE_PNG, PILLOW, classify_file

    rgb = photos[1][:120, :160]
    assert classify_file(_jpeg(tmp_path / "a.jpg", rgb))[0] == NATIVE_JPEG
    assert classify_file(_jpeg(tmp_path / "g.jpg", rgb[..., 0]))[0] == NATIVE_JPEG  # grayscale
    assert classify_file(_jpeg(tmp_path / "a.png", rgb))[0] == NATIVE_PNG
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert classify_file(str(tmp_path / "cmyk.jpg"))[0] == PILLOW
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif)
    assert classify_file(str(tmp_path / "rotated.jpg"))[0] == PILLOW  # TensorFlow would ignore the rotation
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert classify_file(str(tmp_path / "cut.jpg"))[0] == PILLOW  # no end marker: Pillow skips it by name
    (tmp_path / "text.jpg").write_text("not an image")
    assert classify_file(str(tmp_path / "text.jpg"))[0] == BROKEN


@pytest.mark.parametrize("resize_method", ["nearest", "bilinear"])  # bilinear: JPEGs also scaled in the DCT
def test_native_and_pillow_decoding_agree_to_one_level(tmp_path, photos, resize_method):
    from keras_colour.data.demo import DEMO_PHOTOS, _skimage_data_dir

    shipped = [os.path.join(_skimage_data_dir(), n) for n in DEMO_PHOTOS if n.endswith(".jpg")]  # real camera JPEGs
    paths = shipped + [_jpeg(tmp_path / f"{i}.jpg", p[:300, :400], quality=q) for i, p in enumerate(photos)
                       for q in (75, 95)]  # fmt: skip
    paths.append(_jpeg(tmp_path / "p.png", photos[0][:200, :260]))
    options = dict(image_size=64, batch_size=len(paths), lab_on_device=True, resize_method=resize_method)
    native = next(iter(make_dataset(paths, decoder="native", **options))).numpy()
    pillow = next(iter(make_dataset(paths, decoder="pillow", **options))).numpy()
    levels = np.abs(native - pillow) * 255
    # the accurate integer DCT (what Pillow's libjpeg-turbo computes); TensorFlow's default fast DCT is up to
    # 4 levels off on most pixels
    assert np.mean(levels <= 1 + 1e-3) >= 0.99, np.mean(levels <= 1 + 1e-3)


def test_native_decoder_skips_what_needs_pillow_and_auto_keeps_it(tmp_path, photos):
    rgb = photos[1][:120, :160]
    paths = [_jpeg(tmp_path / "a.jpg", rgb)]
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    paths.append(str(tmp_path / "cmyk.jpg"))
    log = SkipLog()
    assert sum(int(b.shape[0]) for b in make_dataset(paths, image_size=32, batch_size=2, decoder="native",
                                                     skip_log=log, lab_on_device=True)) == 1  # fmt: skip
    assert "cmyk.jpg" in str(log.skipped) and "decoder: native" in str(log.skipped)
    assert sum(int(b.shape[0]) for b in make_dataset(paths, image_size=32, batch_size=2, lab_on_device=True)) == 2
    with pytest.raises(ValueError, match="decoder"):
        make_dataset(paths, decoder="libjpeg")


def test_a_corrupt_file_with_a_valid_header_and_end_does_not_stop_the_pipeline(tmp_path, photos):
    good = [_jpeg(tmp_path / f"{i}.jpg", photos[i % 3][:100, :100]) for i in range(4)]
    data = bytearray((tmp_path / "0.jpg").read_bytes())
    start = data.index(b"\xff\xda") + 20  # inside the entropy-coded scan
    data[start : start + 200] = b"\xff\x00" * 100
    data[start + 300 : start + 340] = b"\xff\xd0" * 20
    (tmp_path / "bad.jpg").write_bytes(bytes(data))
    ds = make_dataset([*good, str(tmp_path / "bad.jpg")], image_size=32, batch_size=1, lab_on_device=True)
    assert 4 <= sum(1 for _ in ds) <= 5  # decoded with artefacts or dropped, but never an exception


@pytest.mark.parametrize(
    "shape",
    [(375, 500), (500, 333), (512, 512), (257, 490), (64, 48), (1, 1), (300, 600), (1024, 700)],
    ids=lambda s: f"{s[0]}x{s[1]}",
)
def test_the_faster_resize_gives_tensorflows_antialiased_bilinear(shape):
    """Shrinking (up to 2x: the XLA passes), enlarging, one pixel, and larger than 2x (TensorFlow's kernel)."""
    from keras_colour.data.resize import resize_bilinear_antialiased

    image = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    reference = tf.image.resize(tf.image.convert_image_dtype(image, tf.float32), [256, 256], antialias=True)
    out = tf.function(resize_bilinear_antialiased, reduce_retracing=True)(tf.constant(image), 256)
    assert out.shape == (256, 256, 3) and out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), tf.clip_by_value(reference, 0.0, 1.0).numpy(), rtol=0, atol=3e-5)
    with pytest.raises(TypeError, match="uint8"):
        resize_bilinear_antialiased(tf.constant(image, tf.float32), 256)

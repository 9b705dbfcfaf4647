"""The built-in demo dataset: crops of the colour photographs that ship with scikit-image.

No network is needed. Each photograph is split into a left part (training
crops at random positions and scales) and a right strip (test crops), so no
test pixel is ever seen in training. The result is an ordinary class-per-folder
tree (`train/<photo>/*.png`, `test/<photo>/*.png`) read by the same pipeline
as ImageNet.
"""

import logging
import os
import shutil
import tempfile

import numpy as np
import skimage.data
from PIL import Image

logger = logging.getLogger(__name__)

# Colour photographs bundled inside scikit-image's package data (no download).
DEMO_PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "motorcycle_left.png",
)
CROP_SIZE = 128
TEST_FRACTION = 0.25
TEST_CROPS_PER_PHOTO = 4
VERSION = 1


def _skimage_data_dir():
    return os.path.dirname(skimage.data.__file__)


def default_cache_dir():
    """Where the demo dataset is cached: `$KERAS_COLOUR_CACHE`, else `~/.cache/keras_colour`."""
    base = os.environ.get("KERAS_COLOUR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "keras_colour")
    return base


def _random_crops(image, count, rng, size):
    h, w = image.shape[:2]
    crops = []
    for _ in range(count):
        side = int(rng.uniform(0.35, 1.0) * min(h, w))
        y = rng.integers(0, h - side + 1)
        x = rng.integers(0, w - side + 1)
        crop = Image.fromarray(image[y : y + side, x : x + side]).resize((size, size), Image.BILINEAR)
        crops.append(crop)
    return crops


def build_demo_dataset(root=None, train_crops=320, seed=42):
    """Writes (once) and returns the demo dataset's `(train_dir, test_dir)`.

    Args:
        root: str or None. Where to write it; defaults to
            `$KERAS_COLOUR_CACHE` or `~/.cache/keras_colour`.
        train_crops: int. Training crops in all, spread over the photographs.
        seed: int. Seeds the crop positions.
    """
    root = root or default_cache_dir()
    target = os.path.join(root, f"demo-v{VERSION}-{train_crops}-{seed}")
    train_dir, test_dir = os.path.join(target, "train"), os.path.join(target, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        return train_dir, test_dir
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".demo-", dir=root)
    rng = np.random.default_rng(seed)
    src = _skimage_data_dir()
    per_photo = int(np.ceil(train_crops / len(DEMO_PHOTOS)))
    written = 0
    for name in DEMO_PHOTOS:
        with Image.open(os.path.join(src, name)) as im:
            image = np.asarray(im.convert("RGB"))
        w = image.shape[1]
        cut = int(w * (1 - TEST_FRACTION))
        label = os.path.splitext(name)[0]
        for split, part, count in (
            ("train", image[:, :cut], min(per_photo, train_crops - written)),
            ("test", image[:, cut:], TEST_CROPS_PER_PHOTO),
        ):
            folder = os.path.join(tmp, split, label)
            os.makedirs(folder, exist_ok=True)
            for i, crop in enumerate(_random_crops(part, count, rng, CROP_SIZE)):
                crop.save(os.path.join(folder, f"{label}_{i:04d}.png"))
            if split == "train":
                written += count
    try:
        os.replace(tmp, target)  # atomic: a half-written dataset is never picked up
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Demo dataset ready in %s (%d training crops)", target, written)
    return train_dir, test_dir

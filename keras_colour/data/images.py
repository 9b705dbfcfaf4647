"""Finding and decoding image files, robustly.

Files are classified once, in parallel, when a dataset is built (`classify_files`): plain JPEGs and PNGs
are decoded by TensorFlow's native ops in the `tf.data` map (no Python per image, so decoding scales with
cores); everything else goes through Pillow inside `tf.numpy_function`, so a file that is not a decodable
image (a truncated JPEG, a text file named `.jpg`) is skipped with one warning naming it instead of
raising inside TensorFlow mid-epoch. Pillow decodes JPEG, PNG (8 and 16 bit), BMP, GIF (first frame) and
WebP.
"""

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class SkipLog:
    """Counts files that could not be decoded; warns once per file."""

    def __init__(self):
        self._lock = threading.Lock()
        self.skipped = {}

    def record(self, path, error):
        with self._lock:
            first = path not in self.skipped
            self.skipped[path] = str(error)
        if first:
            logger.warning("Skipping %s: not a decodable image (%s)", path, error)

    @property
    def count(self):
        return len(self.skipped)

    def report(self):
        if self.count:
            logger.warning("%d file(s) skipped as undecodable: %s", self.count, ", ".join(sorted(self.skipped)))
        return self.count


def list_images(root):
    """Lists image files under `root` with their class labels.

    A directory with one sub-folder per class (as ImageNet) gives each image its
    folder's name as label; images directly in `root` get the label `""`.
    Paths are sorted so a seed gives the same split everywhere.

    Returns:
        (paths, labels): two lists of str.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Image folder not found: {root!r}")
    paths, labels = [], []
    for path, rel in walk_images(root):
        paths.append(path)
        labels.append(rel.split(os.sep)[0] if os.sep in rel else "")
    return paths, labels


def _utf8(name):
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def walk_images(root, extensions=IMAGE_EXTENSIONS, skip_dirs=()):
    """Yields `(path, path relative to root)` of every image file under `root`, sorted, each real file once.

    `extensions` (lower case, with the dot) picks other files the same way, for example videos. Folders
    whose real path is in `skip_dirs` are not entered (an output folder inside an input folder).

    Symbolic links to folders are followed, but a folder already visited (a link loop such as
    `ln -s .. data/cls/loop`, or two links to one folder) is skipped with a warning, and so is a file
    reached twice. A name that is not valid UTF-8 is skipped with a warning naming it.
    """
    seen_dirs, seen_files = set(), set()
    skip_dirs = {os.path.realpath(d) for d in skip_dirs}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in skip_dirs:
            dirnames[:] = []
            continue
        if real in seen_dirs:
            logger.warning("Skipping %s: it is %s again (a symbolic link loop or a second link)", dirpath, real)
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not name.lower().endswith(extensions):
                continue
            if not _utf8(path):
                logger.warning("Skipping %r: its name is not valid UTF-8; rename the file to use it", path)
                continue
            real_file = os.path.realpath(path)
            if real_file in seen_files:
                continue
            seen_files.add(real_file)
            yield path, os.path.relpath(path, root)


def read_image_list(list_file):
    """Reads a text file of image paths (one a line, `#` comments, relative to the file)."""
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"Image list not found: {list_file!r}")
    base = os.path.dirname(os.path.abspath(list_file))
    paths, labels = [], []
    with open(list_file, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            path = line if os.path.isabs(line) else os.path.join(base, line)
            paths.append(path)
            labels.append(os.path.basename(os.path.dirname(path)))
    return paths, labels


def split_per_class(paths, labels, per_class, seed=42):
    """Picks `per_class` images of every class (seeded) as a test set.

    The thesis's test set is 10 images per ImageNet class. Unlike the thesis,
    which drew them from its training images, the picked images are removed
    from the training list so the two never overlap.

    Returns:
        (train_paths, test_paths).
    """
    rng = np.random.default_rng(seed)
    by_class = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    test_idx = set()
    for label in sorted(by_class):
        idx = by_class[label]
        take = min(per_class, len(idx))
        test_idx.update(rng.choice(idx, size=take, replace=False).tolist())
    train = [p for i, p in enumerate(paths) if i not in test_idx]
    test = [p for i, p in enumerate(paths) if i in test_idx]
    return train, test


def decode_to_rgb8(path, draft_size=None, with_alpha=False):
    """Decodes one file to uint8 RGB `[H, W, 3]`, upright.

    The EXIF orientation is applied (a portrait photo stored sideways comes out upright). Grayscale
    becomes 3 channels, 16-bit is scaled to 8 bit, a GIF gives its first frame. Raises on anything
    undecodable.

    Args:
        path: str.
        draft_size: int or None. Lets libjpeg decode a large JPEG at a reduced
            scale (1/2, 1/4, 1/8) that is still at least this size: several
            times faster, and the image is resized down afterwards anyway.
        with_alpha: bool. Also return the alpha channel (uint8 `[H, W]`, or None without one).
    """
    with Image.open(path) as opened:
        opened.seek(0)
        if draft_size and opened.format == "JPEG":
            opened.draft("RGB", (draft_size, draft_size))
        im = ImageOps.exif_transpose(opened)
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8) if with_alpha and "A" in im.getbands() else None
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im).astype(np.float64)
            peak = 65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0
            arr = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
            arr = np.repeat(arr[..., None], 3, axis=-1)
        else:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"decoded to an empty image of shape {arr.shape}")
    return (arr, alpha) if with_alpha else arr


# Routes of `classify_files`: how each file is decoded in the pipeline.
NATIVE_JPEG, NATIVE_PNG, PILLOW, BROKEN = 0, 1, 2, -1


def _jpeg_complete(path):
    with open(path, "rb") as f:
        f.seek(-2, os.SEEK_END)
        return f.read() == b"\xff\xd9"


def _png_complete(path):
    with open(path, "rb") as f:
        f.seek(-12, os.SEEK_END)
        return f.read()[4:8] == b"IEND"


def classify_file(path):
    """`(route, (width, height))` of one file from its header: native JPEG/PNG, Pillow, or BROKEN with a reason.

    TensorFlow's own decoders take plain 8-bit RGB/grayscale JPEGs and PNGs without an EXIF rotation and with
    their end marker (a truncated file would stop the pipeline inside TensorFlow). Everything else that Pillow
    can open (16-bit, palette, CMYK, rotated, GIF, BMP, WebP, truncated) takes the Pillow path, which skips a
    file it cannot decode with a warning naming it.
    """
    try:
        with Image.open(path) as im:
            size, fmt, mode = im.size, im.format, im.mode
            rotated = fmt == "JPEG" and im.getexif().get(0x0112, 1) != 1
    except Exception as e:  # not an image at all: skipped up front
        return BROKEN, str(e)
    try:
        if fmt == "JPEG" and mode in ("RGB", "L") and not rotated and _jpeg_complete(path):
            return NATIVE_JPEG, size
        if fmt == "PNG" and mode in ("RGB", "RGBA", "L", "LA") and _png_complete(path):
            return NATIVE_PNG, size
    except OSError:
        pass
    return PILLOW, size


_ROUTE_CACHE = {}
_ROUTE_LOCK = threading.Lock()


def classify_files(paths, workers=None):
    """Routes of many files, read once each in parallel and remembered (keyed by path, size and mtime)."""

    def key(path):
        try:
            st = os.stat(path)
            return path, st.st_size, st.st_mtime_ns
        except OSError:
            return path, None, None

    keys = [key(p) for p in paths]
    todo = [k for k in dict.fromkeys(keys) if k not in _ROUTE_CACHE]
    if todo:
        with ThreadPoolExecutor(max_workers=workers or min(32, (os.cpu_count() or 1) * 4)) as pool:
            results = list(pool.map(lambda k: classify_file(k[0]), todo))
        with _ROUTE_LOCK:
            _ROUTE_CACHE.update(zip(todo, results))
    return [_ROUTE_CACHE[k] for k in keys]


def decode_mask(path):
    """Decodes a Pascal VOC palette PNG to its class indices `[H, W]` (255 = ignore)."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise ValueError(f"segmentation mask {path!r} must be a palette or grayscale PNG, got mode {im.mode}")
        return np.asarray(im, dtype=np.uint8)

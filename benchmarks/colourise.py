"""Seconds per 1920x1080 image for `keras-colour colourise` with the 256x256 Gorriz generator.

    python benchmarks/colourise.py [--images 8] [--batch-size 8] [--model generator.keras]

Reports float32 and bfloat16 (`--precision bfloat16` of `keras-colour colourise`) side by side.

Without --model, a randomly initialised 256x256 Gorriz generator (IBN + spectral norm) is used: the
speed does not depend on the weights.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import skimage.data
import tensorflow as tf
from PIL import Image

from keras_colour.colourise import colourise_paths
from keras_colour.models import build_generator
from keras_colour.precision import bfloat16_units


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    model = (
        keras.models.load_model(args.model)
        if args.model
        else build_generator("gorriz", 256, norm="ibn", spectral_norm=True)
    )
    frame = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((1920, 1080), Image.BICUBIC))
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.makedirs(src)
        for i in range(args.images):
            Image.fromarray(np.roll(frame, 37 * i, axis=1)).save(os.path.join(src, f"frame_{i:04d}.jpg"), quality=92)
        seconds = {}
        for precision in ("float32", "bfloat16"):
            options = dict(progress=False, precision=precision)
            colourise_paths(model, [os.path.join(src, "frame_0000.jpg")], os.path.join(tmp, "warm"), **options)
            start = time.perf_counter()
            written, _ = colourise_paths(model, [src], out, batch_size=args.batch_size, **options)
            seconds[precision] = (time.perf_counter() - start) / len(written)
    print(
        f"TensorFlow {tf.__version__}, CPU cores {os.cpu_count()}, bfloat16 units: {bfloat16_units() or 'none'}, "
        f"GPU: {bool(tf.config.list_physical_devices('GPU'))}"
    )
    for precision, value in seconds.items():
        print(
            f"colourise ({precision}): {len(written)} images of 1920x1080 "
            f"(decode JPEG, model at 256x256, full-resolution L, write PNG): {value:.3f} s per image"
        )


if __name__ == "__main__":
    main()

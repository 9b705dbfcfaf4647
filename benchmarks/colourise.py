"""Seconds per 1920x1080 image for `keras-colour colourise` with the 256x256 Gorriz generator.

    python benchmarks/colourise.py [--images 8] [--batch-size 8] [--model generator.keras] [--engines ...]

Reports float32 on each engine (`--engine` of `keras-colour colourise`: TensorFlow, ONNX Runtime, LiteRT, and
the one `auto` picks), and bfloat16 on TensorFlow where the CPU has bfloat16 units, under the machine's line
(CPU model, cores, AVX2 / AVX-512 / AMX / bfloat16 units, oneDNN).

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
from PIL import Image

from keras_colour.colourise import colourise_paths
from keras_colour.engines import ENGINES, EngineError, choose_engine, machine_line
from keras_colour.models import build_generator
from keras_colour.precision import bfloat16_units


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default=None)
    parser.add_argument("--engines", nargs="+", default=["tensorflow", "onnxruntime", "litert", "auto"],
                        choices=ENGINES, help="float32 engines to time (default: each, then auto)")  # fmt: skip
    parser.add_argument("--bfloat16", action=argparse.BooleanOptionalAction, default=None,
                        help="also time bfloat16 on TensorFlow (default: with bfloat16 units)")  # fmt: skip
    args = parser.parse_args()
    model = (
        keras.models.load_model(args.model)
        if args.model
        else build_generator("gorriz", 256, norm="ibn", spectral_norm=True)
    )
    runs = [("float32", engine) for engine in args.engines]
    if args.bfloat16 or (args.bfloat16 is None and bfloat16_units()):
        runs.append(("bfloat16", "tensorflow"))
    frame = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((1920, 1080), Image.BICUBIC))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("KERAS_COLOUR_CACHE", os.path.join(tmp, "cache"))  # auto measures afresh
        src = os.path.join(tmp, "in")
        os.makedirs(src)
        for i in range(args.images):
            Image.fromarray(np.roll(frame, 37 * i, axis=1)).save(os.path.join(src, f"frame_{i:04d}.jpg"), quality=92)
        for precision, engine in runs:
            options = dict(progress=False, precision=precision, engine=engine, batch_size=args.batch_size)
            if engine == "auto":  # measure now (a job this small would otherwise run on the stored choice only)
                choose_engine(model, "auto", args.batch_size)
            try:  # warm: traces, exports once into the cache, auto's measurement
                colourise_paths(model, [os.path.join(src, "frame_0000.jpg")], os.path.join(tmp, "warm"), **options)
            except EngineError as e:
                print(f"{engine}: not timed ({e})")
                continue
            out = os.path.join(tmp, f"out_{precision}_{engine}")
            start = time.perf_counter()
            written, _ = colourise_paths(model, [src], out, **options)
            seconds = (time.perf_counter() - start) / len(written)
            used = choose_engine(model, engine, args.batch_size).name if precision == "float32" else "tensorflow"
            rows.append((precision, engine if engine != "auto" else f"auto ({used})", seconds))
    print(machine_line())
    print(
        f"colourise: {args.images} images of 1920x1080 (decode JPEG, model at 256x256, full-resolution L, write PNG), "
        f"batch {args.batch_size}"
    )
    print("| precision | engine | seconds per image |")
    print("|---|---|---:|")
    for precision, engine, seconds in rows:
        print(f"| {precision} | {engine} | {seconds:.3f} |")


if __name__ == "__main__":
    main()

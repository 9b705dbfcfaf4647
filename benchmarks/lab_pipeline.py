"""Lab conversion and input pipeline speed, against skimage.

Prints images per second for
  (a) `rgb_to_lab` on 256x256 batches (tf.function, and XLA) vs `skimage.color.rgb2lab` on the same data,
  (b) the whole pipeline (decode JPEG, resize to 256, Lab) on real photographs, as it was before native decoding
      (Pillow, TensorFlow's ScaleAndTranslate resize), with Pillow and the faster resize (`decoder="pillow"`), and
      today's default (TensorFlow's native decoders, the faster resize), on 1 and 2 threads
      (`tf.data.Options().threading.private_threadpool_size`), in images/s and images per CPU-second,
and the maximum absolute difference from skimage (Lab units).

    python benchmarks/lab_pipeline.py [--batch 16] [--repeats 5] [--images 256]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    # Each pipeline figure comes from a fresh process held to `threads` cores before TensorFlow starts its thread
    # pools: with more cores free, TensorFlow's idle threads spin on them and "1 thread" is not one core.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: json.loads(sys.argv[2])["threads"]])

import numpy as np
import skimage.color
import skimage.data
import tensorflow as tf
from PIL import Image

from keras_colour import colour
from keras_colour.data import make_dataset, pipeline
from keras_colour.data.resize import scale_and_translate


def photographs():
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]
    out = []
    for name in names:
        img = getattr(skimage.data, name)()
        out.append(img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, -1))
    return out


# The pipelines compared: the one before native decoding (Pillow in `tf.numpy_function`, TensorFlow's
# `ScaleAndTranslate` resize), Pillow with the faster resize (today's `decoder="pillow"`), and today's default.
PATHS = (
    "before: Pillow + ScaleAndTranslate resize",
    "Pillow + keras_colour resize",
    "native decode + keras_colour resize",
)


def run_pipeline(paths, path_name, threads, batch, **kwargs):
    """(images/s, images per CPU-second) of one pass of `make_dataset` over `paths`, in a process of its own."""
    spec = dict(paths=paths, path_name=path_name, threads=threads, batch=batch, kwargs=kwargs)
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"the pipeline run {path_name!r} ({threads} threads) failed:\n{out.stderr[-3000:]}")
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def _run_pipeline_here(paths, path_name, threads, batch, kwargs, passes=3):
    decoder = "pillow" if path_name.startswith(("before", "Pillow")) else "auto"
    saved = pipeline.resize_bilinear_antialiased
    if path_name.startswith("before"):
        pipeline.resize_bilinear_antialiased = scale_and_translate
    try:
        ds = make_dataset(paths, image_size=256, batch_size=batch, training=True, decoder=decoder, **kwargs)
    finally:
        pipeline.resize_bilinear_antialiased = saved
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    ds = ds.with_options(options)
    for _ in ds.take(2):
        pass
    best = (0.0, 0.0)
    for _ in range(passes):  # the best pass: the others were disturbed by something else on the machine
        wall, cpu = time.perf_counter(), time.process_time()
        n = sum(int((b[0] if isinstance(b, tuple) else b).shape[0]) for b in ds)
        best = max(best, (n / (time.perf_counter() - wall), n / (time.process_time() - cpu)))
    return best


def timed(fn, repeats):
    fn()  # warm up (tracing, compilation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(_run_pipeline_here(**json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=256, help="JPEG files for the pipeline benchmark")
    args = parser.parse_args()
    print(
        f"TensorFlow {tf.__version__}, devices: {[d.device_type for d in tf.config.list_logical_devices()]}, "
        f"CPU cores: {os.cpu_count()}"
    )

    photos = photographs()
    batch = np.stack(
        [np.asarray(Image.fromarray(photos[i % len(photos)]).resize((256, 256))) for i in range(args.batch)]
    )
    batch_f = (batch / 255.0).astype(np.float32)

    convert = tf.function(colour.rgb_to_lab)
    convert_xla = tf.function(colour.rgb_to_lab, jit_compile=True)
    x = tf.constant(batch_f)
    t_tf = timed(lambda: convert(x).numpy(), args.repeats)
    t_xla = timed(lambda: convert_xla(x).numpy(), args.repeats)
    t_sk = timed(lambda: [skimage.color.rgb2lab(img) for img in batch_f], args.repeats)
    t_sk64 = timed(lambda: [skimage.color.rgb2lab(img) for img in batch], args.repeats)
    print(f"\n(a) rgb_to_lab, {args.batch} x 256x256 images (best of {args.repeats}):")
    print(f"  TensorFlow (tf.function)   {args.batch / t_tf:9.1f} images/s")
    print(f"  TensorFlow (XLA)           {args.batch / t_xla:9.1f} images/s")
    print(f"  skimage rgb2lab (float32)  {args.batch / t_sk:9.1f} images/s")
    print(f"  skimage rgb2lab (uint8)    {args.batch / t_sk64:9.1f} images/s")
    print(f"  speed-up vs skimage float32: {t_sk / t_tf:.2f}x (XLA {t_sk / t_xla:.2f}x)")

    diffs = [
        np.max(np.abs(colour.rgb_to_lab(tf.constant(p / 255.0, tf.float32)).numpy() - skimage.color.rgb2lab(p)))
        for p in photos
    ]
    rng = np.random.default_rng(0).random((64, 64, 64, 3))
    diffs.append(np.max(np.abs(colour.rgb_to_lab(tf.constant(rng, tf.float32)).numpy() - skimage.color.rgb2lab(rng))))
    print(f"  max |TF - skimage| over {len(photos)} photographs and 262,144 random colours: {max(diffs):.2e} Lab units")

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.images):
            p = photos[i % len(photos)]
            h, w = p.shape[:2]
            scale = 500 / max(h, w)  # ImageNet-like size
            img = Image.fromarray(p).resize((int(w * scale), int(h * scale)))
            path = os.path.join(tmp, f"img_{i:04d}.jpg")
            img.save(path, quality=90)
            paths.append(path)
        print(
            f"\n(b) whole pipeline on {args.images} JPEGs of about 500x375 (decode, resize to 256, Lab), "
            f"batch {args.batch}; each in a process held to as many cores as threads: images/s (wall clock) and "
            "images per CPU-second (the process's CPU time, all threads):"
        )
        speeds = {}
        for path_name in PATHS:
            for threads in (1, min(2, len(os.sched_getaffinity(0)))):
                for label, kwargs in (("Lab in the map", {}), ("RGB only (Lab on device)", {"lab_on_device": True})):
                    wall, per_cpu = run_pipeline(paths, path_name, threads, args.batch, **kwargs)
                    speeds[path_name, threads, label] = wall, per_cpu
                    print(f"  {path_name:40s} {threads} thread(s)  {label:26s} {wall:7.1f} /s  {per_cpu:7.1f} /CPU-s")
        before, new = PATHS[0], PATHS[-1]
        for label in ("Lab in the map", "RGB only (Lab on device)"):
            per_core = speeds[new, 1, label][1] / speeds[before, 1, label][1]
            scaling = speeds[new, 2, label][0] / speeds[new, 1, label][0]
            print(
                f"  {label}: per core, native / the pipeline before {per_core:.2f}x (target 2x); "
                f"native 2 threads / 1 thread {scaling:.2f}x (target 1.8x)"
            )
        start = time.perf_counter()
        for path in paths:
            skimage.color.rgb2lab(np.asarray(Image.open(path).convert("RGB").resize((256, 256), Image.BILINEAR)))
        print(f"  {'skimage + PIL, one by one':28s} {args.images / (time.perf_counter() - start):9.1f} images/s")


if __name__ == "__main__":
    main()

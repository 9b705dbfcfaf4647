"""Lab conversion and input pipeline speed, against skimage.

Prints images per second for
  (a) `rgb_to_lab` on 256x256 batches (tf.function, and XLA) vs `skimage.color.rgb2lab` on the same data,
  (b) the whole pipeline (decode JPEG, resize to 256, Lab) on real photographs, with TensorFlow's native
      decoders and with Pillow, on 1 and 2 threads (`tf.data.Options().threading.private_threadpool_size`),
and the maximum absolute difference from skimage (Lab units).

    python benchmarks/lab_pipeline.py [--batch 16] [--repeats 5] [--images 256]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import skimage.color
import skimage.data
import tensorflow as tf
from PIL import Image

from keras_colour import colour
from keras_colour.data import make_dataset


def photographs():
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]
    out = []
    for name in names:
        img = getattr(skimage.data, name)()
        out.append(img[..., :3] if img.ndim == 3 else np.repeat(img[..., None], 3, -1))
    return out


def timed(fn, repeats):
    fn()  # warm up (tracing, compilation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
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
            f"batch {args.batch}:"
        )
        speeds = {}
        for decoder in ("pillow", "auto"):
            for threads in (1, 2):
                for label, kwargs in (("Lab in the map", {}), ("RGB only (Lab on device)", {"lab_on_device": True})):
                    ds = make_dataset(paths, image_size=256, batch_size=args.batch, training=True, decoder=decoder,
                                      **kwargs)  # fmt: skip
                    options = tf.data.Options()
                    options.threading.private_threadpool_size = threads
                    ds = ds.with_options(options)
                    for _ in ds.take(2):
                        pass
                    start = time.perf_counter()
                    n = sum(int((b[0] if isinstance(b, tuple) else b).shape[0]) for b in ds)
                    speeds[decoder, threads, label] = n / (time.perf_counter() - start)
                    name = "native (TF decode)" if decoder == "auto" else "Pillow (numpy_function)"
                    print(
                        f"  {name:24s} {threads} thread(s)  {label:26s} {speeds[decoder, threads, label]:9.1f} images/s"
                    )
        for label in ("Lab in the map", "RGB only (Lab on device)"):
            print(
                f"  {label}: native / Pillow at 1 thread {speeds['auto', 1, label] / speeds['pillow', 1, label]:.2f}x, "
                f"at 2 threads {speeds['auto', 2, label] / speeds['pillow', 2, label]:.2f}x; "
                f"native 2 threads / 1 thread {speeds['auto', 2, label] / speeds['auto', 1, label]:.2f}x"
            )
        start = time.perf_counter()
        for path in paths:
            skimage.color.rgb2lab(np.asarray(Image.open(path).convert("RGB").resize((256, 256), Image.BILINEAR)))
        print(f"  {'skimage + PIL, one by one':28s} {args.images / (time.perf_counter() - start):9.1f} images/s")


if __name__ == "__main__":
    main()

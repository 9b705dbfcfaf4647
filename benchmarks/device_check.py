"""One command to see whether keras-colour is fast on this machine (made for a GPU; runs on a CPU too).

Writes `device_check.json` and `device_check.md` (a Markdown table) to `--output`:

- the device and versions;
- training images/s of U-Net L1, pix2pix, Gorriz 3-scale and Gorriz 3-scale + VGG16 block3_conv3 (random
  weights: the same speed as ImageNet's, which need a download) at 256x256, batch 16 and 64, float32 /
  mixed_float16 / mixed_bfloat16, XLA off and on, both update protocols (`simultaneous`, `bbc`), with the
  peak GPU memory of each;
- input pipeline images/s on generated JPEGs of about 500x375 (decode + resize + Lab), without and with
  `cache`, against the best training speed (the pipeline should never be the bottleneck);
- colourise seconds per 1920x1080 image;
- whether the first training step's losses on the GPU match the CPU's (within mixed-precision tolerance).

Targets it checks: Gorriz + VGG16 at 256x256 at least 1,000 images/s on one H100, and an input pipeline
faster than training. Rows that do not fit in `--budget-s` (default 330 s, for a 6-minute slot) are
listed as skipped, most important first.

    python benchmarks/device_check.py --output DIR             # on a GPU: the full table
    python benchmarks/device_check.py --output DIR --cpu-smoke # tiny sizes, every field (the test runs this)
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_throughput import FAMILIES  # noqa: E402

import keras_colour  # noqa: E402
from keras_colour.config import config_from_dict  # noqa: E402

TARGET_IMAGES_PER_S = 1000.0  # Gorriz + VGG16, 256x256, one H100
ROW_FIELDS = ("family", "image_size", "batch", "precision", "xla", "protocol", "images_per_s", "peak_memory_mb",
              "status")  # fmt: skip


def device_info():
    gpus = tf.config.list_physical_devices("GPU")
    names = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return {
        "gpus": names,
        "device": names[0] if names else f"CPU ({os.cpu_count()} cores)",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_colour": keras_colour.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
    }


def _config(family, size, batch, precision="none", xla=False, protocol="simultaneous", small=False):
    overrides = {**FAMILIES[family], "data.image_size": size, "data.batch_size": batch, "train.jit_compile": xla,
                 "train.mixed_precision": precision, "train.protocol": protocol}  # fmt: skip
    if small:
        overrides.update({"model.base_filters": 8, "model.max_filters": 32, "model.num_downsamples": 4})
    return config_from_dict({}, overrides=[f"{k}={v}" for k, v in overrides.items()])


def _batch(size, batch, seed=0):
    rng = np.random.default_rng(seed)
    lightness = tf.constant(rng.uniform(-1, 1, (batch, size, size, 1)), tf.float32)
    ab = tf.constant(rng.uniform(-0.5, 0.5, (batch, size, size, 2)), tf.float32)
    return lightness, ab


class _Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.elapsed = time.perf_counter() - self.start


def _reset_memory():
    for i, _ in enumerate(tf.config.list_physical_devices("GPU")):
        tf.config.experimental.reset_memory_stats(f"GPU:{i}")


def _peak_memory_mb():
    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def train_row(family, size, batch, precision, xla, protocol, steps, small):
    keras.utils.set_random_seed(0)
    _reset_memory()
    trainer = keras_colour.build_trainer(_config(family, size, batch, precision, xla, protocol, small))
    ds = tf.data.Dataset.from_tensors(_batch(size, batch)).repeat()
    trainer.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)  # trace and compile
    timer = _Timer()
    trainer.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    return batch * steps / timer.elapsed, _peak_memory_mb()


def training_rows(args, deadline):
    families = ["gorriz3_vgg16", "gorriz3", "pix2pix", "unet"]  # most important first
    precisions = ["mixed_bfloat16"] if args.cpu_smoke else ["float32", "mixed_float16", "mixed_bfloat16"]
    grid = []
    for family in families:
        for batch in args.batches:
            for precision in precisions:
                for xla in [False] if args.cpu_smoke else [True, False]:
                    for protocol in ("simultaneous", "bbc"):
                        if not args.cpu_smoke or protocol == "simultaneous" or family == "gorriz3":
                            grid.append((family, batch, precision, xla, protocol))
    rows = []
    for family, batch, precision, xla, protocol in grid:
        row = dict(family=family, image_size=args.size, batch=batch, precision=precision, xla=xla, protocol=protocol,
                   images_per_s=None, peak_memory_mb=None, status="ok")  # fmt: skip
        if time.perf_counter() > deadline:
            row["status"] = "skipped (time budget)"
        else:
            try:
                policy = "none" if precision == "float32" else precision
                row["images_per_s"], row["peak_memory_mb"] = train_row(
                    family, args.size, batch, policy, xla, protocol, args.steps, args.cpu_smoke
                )
            except Exception as e:  # a configuration the device cannot run (out of memory, no XLA kernel)
                row["status"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        print(_row_line(row), flush=True)
        rows.append(row)
        keras.backend.clear_session()
    return rows


def _row_line(row):
    speed = "-" if row["images_per_s"] is None else f"{row['images_per_s']:.1f}"
    memory = "-" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb']:.0f}"
    return (f"| {row['family']} | {row['image_size']} | {row['batch']} | {row['precision']} | {row['xla']} | "
            f"{row['protocol']} | {speed} | {memory} | {row['status']} |")  # fmt: skip


def pipeline_rows(args, tmp):
    import skimage.data  # noqa: I001
    from PIL import Image

    from keras_colour.data import make_dataset

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    paths = []
    for i in range(args.images):
        photo = Image.fromarray(photos[i % 3]).resize((500, 375))
        path = os.path.join(tmp, f"img_{i:04d}.jpg")
        photo.save(path, quality=90)
        paths.append(path)
    rows = []
    for cache in (False, True):
        ds = make_dataset(paths, image_size=args.size, batch_size=args.pipeline_batch, training=True, cache=cache)
        for _ in ds:  # first pass (fills the cache)
            pass
        start = time.perf_counter()
        n = sum(int(b[0].shape[0]) for b in ds)
        rows.append({"cache": cache, "images": n, "images_per_s": n / (time.perf_counter() - start)})
        print(f"pipeline cache={cache}: {rows[-1]['images_per_s']:.1f} images/s", flush=True)
    return rows


def colourise_seconds(args, tmp):
    import skimage.data  # noqa: I001
    from PIL import Image

    from keras_colour.colourise import colourise_paths
    from keras_colour.models import build_generator

    width, height = (320, 180) if args.cpu_smoke else (1920, 1080)
    generator = build_generator("gorriz", image_size=args.size, **({"num_downsamples": 4} if args.cpu_smoke else {}))
    inputs = os.path.join(tmp, "photos")
    os.makedirs(inputs, exist_ok=True)
    for i in range(args.colourise_images):
        Image.fromarray(skimage.data.astronaut()).resize((width, height)).save(os.path.join(inputs, f"{i}.jpg"))
    colourise_paths(generator, [inputs], os.path.join(tmp, "warm"), progress=False)  # trace
    start = time.perf_counter()
    colourise_paths(generator, [inputs], os.path.join(tmp, "out"), progress=False)
    return {
        "width": width,
        "height": height,
        "seconds_per_image": (time.perf_counter() - start) / args.colourise_images,
    }


def first_step_agreement(args):
    """Losses of the first training step on the GPU vs the CPU (same weights, same batch)."""
    if not tf.config.list_physical_devices("GPU"):
        return {"compared": False, "reason": "no GPU: nothing to compare with the CPU", "max_relative_difference": None,
                "tolerance": None, "match": None}  # fmt: skip
    precision = "mixed_float16"
    results = {}
    for device in ("/GPU:0", "/CPU:0"):
        with tf.device(device):
            keras.utils.set_random_seed(0)
            trainer = keras_colour.build_trainer(_config("gorriz3", args.size, 4, precision, False, "bbc", False))
            history = trainer.fit(tf.data.Dataset.from_tensors(_batch(args.size, 4)), epochs=1, verbose=0).history
            results[device] = {k: v[0] for k, v in history.items()}
        keras.backend.clear_session()
    gpu, cpu = results["/GPU:0"], results["/CPU:0"]
    worst = max(abs(gpu[k] - cpu[k]) / max(abs(cpu[k]), 1e-6) for k in cpu)
    tolerance = 2e-2  # float16 compute: about 3 significant digits per op
    return {"compared": True, "precision": precision, "gpu": gpu, "cpu": cpu, "max_relative_difference": worst,
            "tolerance": tolerance, "match": worst <= tolerance}  # fmt: skip


def markdown(report):
    lines = [f"# keras-colour device check: {report['device']['device']}", ""]
    d = report["device"]
    lines.append(f"TensorFlow {d['tensorflow']}, Keras {d['keras']}, keras-colour {d['keras_colour']}, "
                 f"Python {d['python']}, {d['cpu_cores']} CPU cores; {report['elapsed_s']:.0f} s in all.")  # fmt: skip
    lines += ["", "## Training (images/s)", "",
              "| family | size | batch | precision | XLA | protocol | images/s | peak GPU MiB | status |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [_row_line(r) for r in report["training"]]
    lines += ["", "## Input pipeline", "", "| cache | images | images/s |", "|---|---|---|"]
    lines += [f"| {r['cache']} | {r['images']} | {r['images_per_s']:.1f} |" for r in report["pipeline"]]
    c = report["colourise"]
    lines += ["", f"## Colourise: {c['seconds_per_image']:.3f} s per {c['width']}x{c['height']} image", ""]
    f = report["first_step"]
    lines.append(
        "## First step GPU vs CPU: "
        + (f"max relative difference {f['max_relative_difference']:.2e} (tolerance {f['tolerance']}): "
           f"{'match' if f['match'] else 'MISMATCH'}" if f["compared"] else f["reason"])
    )  # fmt: skip
    t = report["targets"]
    lines += ["", "## Targets", ""]
    for name, target in t.items():
        lines.append(f"- {name}: {target['value']} (target {target['target']}): {target['verdict']}")
    return "\n".join(lines) + "\n"


def targets(report, args):
    best = [r for r in report["training"] if r["family"] == "gorriz3_vgg16" and r["images_per_s"] is not None
            and r["image_size"] == 256]  # fmt: skip
    fastest = max(best, key=lambda r: r["images_per_s"], default=None)
    gpu = bool(report["device"]["gpus"])
    vgg = {
        "value": None if fastest is None else round(fastest["images_per_s"], 1),
        "target": f">= {TARGET_IMAGES_PER_S:.0f} images/s on one H100 (256x256)",
        "verdict": "not measured (no 256x256 run)" if fastest is None else
        ("met" if fastest["images_per_s"] >= TARGET_IMAGES_PER_S else "not met") + ("" if gpu else " (CPU)"),
    }  # fmt: skip
    training_best = max((r["images_per_s"] for r in report["training"] if r["images_per_s"]), default=0.0)
    pipeline_best = max(r["images_per_s"] for r in report["pipeline"])
    pipeline = {
        "value": round(pipeline_best, 1),
        "target": f"faster than the fastest training row ({training_best:.1f} images/s)",
        "verdict": "met" if pipeline_best >= training_best else "not met: the pipeline is the bottleneck",
    }
    return {"gorriz_vgg16_training": vgg, "input_pipeline": pipeline}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="folder for device_check.json and device_check.md")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes, so that it runs on a CPU in a test")
    parser.add_argument("--budget-s", type=float, default=330.0,
                        help="time for the training table (default 330; not applied with --cpu-smoke)")  # fmt: skip
    args = parser.parse_args(argv)
    args.size = 32 if args.cpu_smoke else 256
    args.batches = [2] if args.cpu_smoke else [16, 64]
    args.steps = 2 if args.cpu_smoke else 10
    args.images = 16 if args.cpu_smoke else 512
    args.pipeline_batch = 4 if args.cpu_smoke else 64
    args.colourise_images = 2 if args.cpu_smoke else 8
    os.makedirs(args.output, exist_ok=True)
    start = time.perf_counter()
    report = {"device": device_info(), "cpu_smoke": args.cpu_smoke, "random_weights": "the VGG16 head uses random "
              "weights: the same speed as ImageNet weights, which need a download"}  # fmt: skip
    print(f"Device: {report['device']['device']}; TensorFlow {tf.__version__}", flush=True)
    # --cpu-smoke runs every row however fast the machine is (a test checks every field); the budget is for a device
    report["training"] = training_rows(args, deadline=float("inf") if args.cpu_smoke else start + args.budget_s)
    with tempfile.TemporaryDirectory() as tmp:
        report["pipeline"] = pipeline_rows(args, tmp)
        report["colourise"] = colourise_seconds(args, tmp)
    report["first_step"] = first_step_agreement(args)
    report["elapsed_s"] = time.perf_counter() - start
    report["targets"] = targets(report, args)
    with open(os.path.join(args.output, "device_check.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.output, "device_check.md"), "w", encoding="utf-8") as f:
        f.write(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training-step throughput of each model family.

Prints images per second of one `ColourGAN` training step (generator + discriminator updates) for U-Net
(L1), pix2pix, Gorriz with 3 discriminators (IBN + spectral norm) and Gorriz + VGG16 block3_conv3, with XLA
off and on, on a GPU also with mixed precision (mixed_float16), and under each update protocol
(`simultaneous`, and `bbc`: the BBC loop, with a separate discriminator step per scale on real and on fake
batches and an extra inference-mode generator pass); the `bbc / simultaneous` ratio is printed per row.

    python benchmarks/train_throughput.py [--size 256] [--batch 4] [--steps 5] [--families gorriz3 ...]
        [--protocols simultaneous bbc]

The VGG16 head uses random weights here (same speed as ImageNet weights, which need a download).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

import keras_colour
from keras_colour.config import config_from_dict
from keras_colour.engines import machine_line

_GORRIZ3 = {
    "model.generator": "gorriz",
    "model.norm": "ibn",
    "model.spectral_norm": True,
    "model.discriminator": "multiscale",
    "model.d_scales": 3,
    "loss.adversarial": "lsgan",
}
FAMILIES = {
    "unet": {"model.generator": "unet", "model.discriminator": "none", "loss.adversarial": "none"},
    "pix2pix": {"model.generator": "pix2pix", "model.discriminator": "patchgan", "loss.adversarial": "bce"},
    "gorriz3": _GORRIZ3,
    "gorriz3_vgg16": {
        **_GORRIZ3,
        "loss.feature": "{backbone: vgg16, layers: [block3_conv3], weights: random, allow_random_weights: true}",
    },
}


class _Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.elapsed = time.perf_counter() - self.start


def measure(family, size, batch, steps, jit, precision, protocol="simultaneous"):
    overrides = {**FAMILIES[family], "data.image_size": size, "data.batch_size": batch, "train.jit_compile": jit,
                 "train.mixed_precision": precision, "train.protocol": protocol}  # fmt: skip
    config = config_from_dict({}, overrides=[f"{k}={v}" for k, v in overrides.items()])
    keras.utils.set_random_seed(0)
    trainer = keras_colour.build_trainer(config)
    rng = np.random.default_rng(0)
    lightness = tf.constant(rng.uniform(-1, 1, (batch, size, size, 1)), tf.float32)
    ab = tf.constant(rng.uniform(-0.5, 0.5, (batch, size, size, 2)), tf.float32)
    ds = tf.data.Dataset.from_tensors((lightness, ab)).repeat()
    trainer.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)  # trace / compile
    timer = _Timer()
    trainer.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    return batch * steps / timer.elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--xla", choices=("off", "on", "both"), default="both")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=None,
        choices=("none", "mixed_float16", "mixed_bfloat16"),
        help="dtype policies to time (default: none, plus mixed_float16 on a GPU)",
    )
    parser.add_argument("--protocols", nargs="+", default=["simultaneous"], choices=("simultaneous", "bbc"))
    args = parser.parse_args()
    gpu = bool(tf.config.list_physical_devices("GPU"))
    print(machine_line())
    print(f"Keras {keras.__version__}; size {args.size}, batch {args.batch}, {args.steps} timed steps")
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.xla]
    precisions = args.precisions or (["none", "mixed_float16"] if gpu else ["none"])
    print(f"{'family':16s} {'XLA':5s} {'precision':14s} {'protocol':13s} {'images/s':>10s}")
    for family in args.families:
        for jit in jits:
            for precision in precisions:
                speeds = {}
                for protocol in args.protocols:
                    speeds[protocol] = measure(family, args.size, args.batch, args.steps, jit, precision, protocol)
                    extra = ""
                    if protocol == "bbc" and "simultaneous" in speeds:
                        extra = f"   bbc step costs {speeds['simultaneous'] / speeds['bbc']:.2f}x simultaneous"
                    print(f"{family:16s} {str(jit):5s} {precision:14s} {protocol:13s} {speeds[protocol]:10.2f}{extra}",
                          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

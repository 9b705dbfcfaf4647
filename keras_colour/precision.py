"""Inference precision for colourise and video: float32, bfloat16, or `auto`.

On CPUs with bfloat16 matrix units (Intel AMX, AVX-512 BF16) a generator computing in bfloat16 runs about
twice as fast. `auto` uses bfloat16 there only when it keeps the result: the first batch is run both ways
and bfloat16 is kept if the 99th percentile of |ab difference| is within `AB_TOLERANCE` Lab units, else
float32 (logged either way). On a GPU or a CPU without those units `auto` means float32.
"""

import logging
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_colour import colour

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "bfloat16", "auto")
AB_TOLERANCE = 1.0  # Lab units, 99th percentile


def bfloat16_units():
    """The bfloat16 matrix units this CPU lists in /proc/cpuinfo: `"AMX-BF16"`, `"AVX512-BF16"` or `None`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    return "AMX-BF16" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else None


def _with_policy(model, policy):
    def clone_function(layer):
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone_function)
    copy.set_weights(model.get_weights())
    return copy


# One bfloat16 copy per float32 model, so several videos or folders colourised with one model share the copy and
# its traced forward pass (a new copy costs about a second to build and trace, per call).
_BFLOAT16_COPIES = weakref.WeakKeyDictionary()


def bfloat16_generator(model):
    """`model` computing in bfloat16 (`mixed_bfloat16`: float32 weights and normalisation statistics).

    The copy is built once per model and gets the model's current weights at every call.
    """
    copy = _BFLOAT16_COPIES.get(model)
    if copy is None:
        copy = _BFLOAT16_COPIES[model] = _with_policy(model, "mixed_bfloat16")
    else:
        copy.set_weights(model.get_weights())
    return copy


def p99_ab_difference(ab_a, ab_b):
    """99th percentile of |difference| of two normalised ab predictions, in Lab units."""
    diff = np.abs(np.asarray(ab_a, np.float32) - np.asarray(ab_b, np.float32)) * colour.AB_SCALE
    return float(np.percentile(diff, 99))


class Precision:
    """Runs a generator's ab prediction in the precision asked (`float32`, `bfloat16`, `auto`) and on an engine.

    `predict(fn)` takes `fn(engine) -> list of ab tensors` (an engine of `keras_colour.engines`, whose
    `predict_ab(L_n)` gives ab_n) so callers keep their own batching; under `auto` the first call decides, once.
    float32 runs on `engine` (`keras_colour.engines.choose_engine`: `auto` picks the fastest this machine has for
    the model); bfloat16 always on TensorFlow.
    """

    def __init__(self, model, precision="float32", engine="tensorflow", batch_size=8, images=None):
        from keras_colour.engines import TensorFlowEngine, choose_engine  # noqa: PLC0415 (engines imports heads)

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.float32_model = model
        self.asked = precision
        self.used = precision if precision != "auto" else None
        self.p99 = None
        if precision == "auto" and (tf.config.list_physical_devices("GPU") or not bfloat16_units()):
            self.used = "float32"
            logger.info("precision auto: float32 (no bfloat16 matrix units on this CPU, or a GPU is used)")
        if engine not in ("auto", "tensorflow") and self.used != "float32":
            from keras_colour.engines import EngineError  # noqa: PLC0415

            raise EngineError(f"--engine {engine} runs float32 only: use --precision float32 (or --engine tensorflow)")
        chosen = choose_engine(model, engine, batch_size, images) if self.used in ("float32", None) else None
        self._float32 = chosen
        bf16 = self.used in ("bfloat16", None)
        self._bf16 = TensorFlowEngine(bfloat16_generator(model), low_resolution=False) if bf16 else None

    @property
    def engine(self):
        """The engine float32 predictions run on (None when only bfloat16 is used)."""
        return self._float32

    def predict(self, fn):
        if self.used == "float32":
            return fn(self._float32)
        if self.used == "bfloat16":
            return fn(self._bf16)
        reference, fast = fn(self._float32), fn(self._bf16)
        self.p99 = p99_ab_difference(np.stack(reference), np.stack(fast))
        self.used = "bfloat16" if self.p99 <= AB_TOLERANCE else "float32"
        logger.info(
            "precision auto: %s (bfloat16 ab differs from float32 by %.2f Lab units at the 99th percentile on the "
            "first batch; limit %.1f)",
            self.used,
            self.p99,
            AB_TOLERANCE,
        )
        return fast if self.used == "bfloat16" else reference

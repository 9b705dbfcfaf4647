"""The runtime that runs a generator for `colourise`, video and the colourise page.

    keras-colour colourise ... --engine auto | tensorflow | onnxruntime | litert

- `tensorflow`: the Keras model itself, as trained (spectral norm, the BBC normalisations), in a traced
  `tf.function`, with every `UpSampling2D(nearest) -> Conv2D(4x4)` pair run as one 3x3 convolution at the low
  resolution (`keras_colour.models.fast`: the same function, 1.8x fewer multiply-adds in those layers).
- `onnxruntime`, `litert`: the float32 export of the generator (`keras-colour export`'s, spectral norm
  folded, with the same low-resolution up-convolutions) in ONNX Runtime or LiteRT's interpreter with XNNPACK,
  written once into the cache folder (`$KERAS_COLOUR_CACHE/engines`) and reused.
- `auto`: the fastest of those this machine has, for this model, at this batch size. It is measured once, on a
  real grayscale photograph, and remembered in `$KERAS_COLOUR_CACHE/engines.sqlite` per machine (CPU model,
  its vector and matrix flags, core count, runtime versions) and model (a digest of its architecture and
  weights); later runs read the choice back. Measuring costs two exports (up to a minute or so for the
  thesis's 256x256 generator), so a job of fewer than `MEASURE_FROM_IMAGES` images or frames that finds no
  stored choice runs on TensorFlow and says so; the first larger job measures.

Every engine other than `tensorflow` is checked against TensorFlow on the model before it is used: its ab
must agree to `TOLERANCE` (normalised units). One that does not is refused (`auto` leaves it out and says so).
The full-resolution L of an output never goes through an engine, so it is exact whichever runs.
"""

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
import weakref

import numpy as np
import tensorflow as tf

from keras_colour.errors import UserError
from keras_colour.heads import predict_ab
from keras_colour.machine import cpu_description
from keras_colour.models.fast import fast_twin
from keras_colour.quiet import stderr_silenced

logger = logging.getLogger(__name__)

ENGINES = ("auto", "tensorflow", "onnxruntime", "litert")
TOLERANCE = 1e-4  # max |ab_n difference| from TensorFlow on the reference photograph
MEASURE_FROM_IMAGES = 32
_PACKAGES = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert"}


class EngineError(UserError):
    """An engine that was asked for cannot run this model here (missing package, no fixed size, disagreement)."""


def onednn_state():
    """`on` / `off` for TensorFlow's oneDNN kernels, and whether that is its default here.

    TensorFlow turns them on by default only on CPUs with AVX-512 VNNI, AVX-512 BF16 or AMX;
    `TF_ENABLE_ONEDNN_OPTS` (read when TensorFlow is imported) decides otherwise.
    """
    asked = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    default = any(flag in cpu_description()[1] for flag in ("avx512_vnni", "avx512_bf16", "amx_tile"))
    if asked in ("0", "1"):
        return f"{'on' if asked == '1' else 'off'} (TF_ENABLE_ONEDNN_OPTS={asked})"
    return f"{'on' if default else 'off'} (TensorFlow's default on this CPU)"


def machine_line():
    """One line naming what a speed figure depends on: CPU model, cores, its vector and matrix units, oneDNN."""
    name, flags = cpu_description()
    labels = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
    units = [label for flag, label in labels.items() if flag in flags]
    missing = [label for flag, label in {"avx512f": "AVX-512", "amx_tile": "AMX"}.items() if flag not in flags]
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        missing.append("bfloat16 units")
    gpus = tf.config.list_physical_devices("GPU")
    return (
        f"CPU: {name}, {os.cpu_count()} cores, {' '.join(units) or 'no AVX2'}"
        + (f" (no {', '.join(missing)})" if missing else "")
        + f"; TensorFlow {tf.__version__}, oneDNN {onednn_state()}"
        + (f"; GPU: {len(gpus)}" if gpus else "; no GPU")
    )


def _version(module):
    try:
        return __import__(module).__version__
    except (ImportError, AttributeError):
        return None


def machine_key():
    """A JSON string naming what makes one engine faster than another here."""
    name, flags = cpu_description()
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    versions = {m: _version(m) for m in ("tensorflow", "onnxruntime", "ai_edge_litert")}
    return json.dumps({"cpu": name, "flags": flags, "cores": os.cpu_count(), "gpus": gpus, "versions": versions})


def model_key(model):
    """A digest of a Keras model's architecture and weights."""
    digest = hashlib.sha256(model.to_json().encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:24]


def cache_dir():
    from keras_colour.data.demo import default_cache_dir  # noqa: PLC0415 (the one cache folder of the package)

    return default_cache_dir()


class TensorFlowEngine:
    """The Keras model in a `tf.function`, with low-resolution up-convolutions (`models.fast.fast_twin`).

    `low_resolution=False` runs the model's own layers (`Precision` does for bfloat16, whose rounding it was
    validated with: summing kernel taps in bfloat16 moves the 99th percentile of the ab error by about 0.2 Lab).
    """

    name = "tensorflow"

    def __init__(self, model, low_resolution=True):
        self.model = model
        self._twin = fast_twin(model) if low_resolution else model
        self._fn = tf.function(lambda lightness: predict_ab(self._twin, lightness), reduce_retracing=True)

    def predict_ab(self, lightness):
        return self._fn(tf.convert_to_tensor(lightness, tf.float32))


class _ExportEngine:
    fmt = None

    def __init__(self, model, size):
        from keras_colour.serving import export_generator  # noqa: PLC0415 (serving imports this module's users)

        self.model, self.size = model, size
        key = model_key(model)
        folder = os.path.join(cache_dir(), "engines", key)
        suffix = ".onnx" if self.fmt == "onnx" else ".tflite"
        self.path = os.path.join(folder, f"generator_lowres_{size[0]}x{size[1]}{suffix}")
        if not os.path.exists(self.path):
            logger.info("engine %s: exporting the generator once, to %s", self.name, self.path)
            export_generator(model, self.fmt, self.path, size=size, low_resolution=True)
        self._load()

    def predict_ab(self, lightness):
        return tf.convert_to_tensor(self._run(np.asarray(lightness, np.float32)))


class OnnxRuntimeEngine(_ExportEngine):
    """The ONNX export in ONNX Runtime's CPU provider, one thread per core."""

    name, fmt = "onnxruntime", "onnx"

    def _load(self):
        import onnxruntime as ort  # noqa: PLC0415 (optional: the export extra)

        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.log_severity_level = 3
        # No busy-waiting between runs: the full-resolution composition and PNG writing share the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def _run(self, x):
        return self._session.run(None, {self._input: x})[0]


class LiteRTEngine(_ExportEngine):
    """The LiteRT export in LiteRT's interpreter (XNNPACK), one thread per core."""

    name, fmt = "litert", "litert"

    def _load(self):
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 (optional: the export extra)

        with stderr_silenced():  # XNNPACK's INFO line
            self._interpreter = Interpreter(model_path=self.path, num_threads=os.cpu_count() or 1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None

    def _run(self, x):
        if x.shape[0] != self._batch:
            with stderr_silenced():
                self._interpreter.resize_tensor_input(self._input, x.shape)
                self._interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


_CLASSES = {"tensorflow": TensorFlowEngine, "onnxruntime": OnnxRuntimeEngine, "litert": LiteRTEngine}


def _fixed_size(model):
    shape = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
    return None if None in shape[1:3] else (int(shape[1]), int(shape[2]))


def _reference(model, batch_size):
    from keras_colour.serving import reference_input  # noqa: PLC0415

    height, width = _fixed_size(model)
    return reference_input(height, width, batch=batch_size)


def _available(name, model):
    """None if engine `name` can run `model` here, else why not."""
    if name == "tensorflow":
        return None
    try:
        __import__(_PACKAGES[name])
    except ImportError:
        return f'needs the {_PACKAGES[name]!r} package: pip install -e ".[export]"'
    if _fixed_size(model) is None:
        return "the model has no fixed input size (an export for it would be rebuilt at every image size)"
    output = model.output["ab"] if isinstance(model.output, dict) else model.output
    if output.shape[-1] != 2:
        return "the model has no plain ab output"
    return None


def _build(name, model, reference_ab=None, reference=None):
    """Engine `name` for `model`, checked against TensorFlow's `reference_ab` on `reference` (L_n)."""
    if name == "tensorflow":
        return TensorFlowEngine(model)
    engine = _CLASSES[name](model, _fixed_size(model))
    got = np.asarray(engine.predict_ab(reference))
    diff = float(np.max(np.abs(got - reference_ab)))
    if not diff <= TOLERANCE:
        raise EngineError(f"--engine {name}: its ab differs from TensorFlow's by {diff:.1e} (limit {TOLERANCE:g})")
    return engine


def _seconds(engine, x, repeats=3):
    engine.predict_ab(x)  # warm: traces, allocates
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(engine.predict_ab(x))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@contextlib.contextmanager
def _choices_db():
    path = os.path.join(cache_dir(), "engines.sqlite")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    db = sqlite3.connect(path, timeout=60)
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS choices (machine TEXT, model TEXT, batch INTEGER, engine TEXT, "
            "seconds TEXT, measured TEXT, PRIMARY KEY (machine, model, batch))"
        )
        yield db
        db.commit()
    finally:
        db.close()


def remembered_choice(model, batch_size, key=None):
    """`(engine name, {engine: seconds per batch})` stored for this machine and model, or None."""
    with _choices_db() as db:
        row = db.execute(
            "SELECT engine, seconds FROM choices WHERE machine = ? AND model = ? AND batch = ?",
            (machine_key(), key or model_key(model), batch_size),
        ).fetchone()
    return (row[0], json.loads(row[1])) if row else None


def choose_engine(model, engine="auto", batch_size=8, images=None):
    """The engine to run `model` with (see the module docstring); `auto` measures once per machine and model.

    Args:
        model: a generator (`keras.Model`) in float32.
        engine: one of `ENGINES`.
        batch_size: the batch size it will run at (what `auto` measures and remembers).
        images: how many images or frames the job has (None: unknown, measure); with fewer than
            `MEASURE_FROM_IMAGES` and nothing stored, `auto` runs on TensorFlow without measuring.

    Raises:
        EngineError: an engine named explicitly that cannot run the model here.
    """
    if engine not in ENGINES:
        raise EngineError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
    chosen = _CHOSEN.setdefault(model, {})
    measure = images is None or images >= MEASURE_FROM_IMAGES
    if (engine, batch_size, measure) not in chosen:  # several videos and folders colourised with one model share it
        chosen[engine, batch_size, measure] = _choose(model, engine, batch_size, measure)
    return chosen[engine, batch_size, measure]


_CHOSEN = weakref.WeakKeyDictionary()


def _choose(model, engine, batch_size, measure):
    if engine == "tensorflow":
        return TensorFlowEngine(model)
    if engine != "auto":
        why = _available(engine, model)
        if why:
            raise EngineError(f"--engine {engine}: {why}")
        reference = _reference(model, 1)
        return _build(engine, model, np.asarray(TensorFlowEngine(model).predict_ab(reference)), reference)
    candidates = [name for name in _CLASSES if _available(name, model) is None]
    for name in _CLASSES:
        if name not in candidates:
            logger.info("engine auto: %s left out (%s)", name, _available(name, model))
    if candidates == ["tensorflow"]:
        return TensorFlowEngine(model)
    key = model_key(model)
    tensorflow = TensorFlowEngine(model)
    reference = _reference(model, 1)
    remembered = remembered_choice(model, batch_size, key)
    if remembered and remembered[0] in candidates:
        name, seconds = remembered
        logger.info("engine auto: %s (measured before on this machine for this model: %s)", name, _format(seconds))
        if name == "tensorflow":
            return tensorflow
        return _build(name, model, np.asarray(tensorflow.predict_ab(reference)), reference)
    if not measure:
        logger.info(
            "engine auto: tensorflow (not yet measured for this model here; the first job of %d or more images or "
            "frames measures %s once)",
            MEASURE_FROM_IMAGES,
            ", ".join(candidates),
        )
        return tensorflow
    logger.info("engine auto: measuring %s once for this model on this machine", ", ".join(candidates))
    reference_ab = np.asarray(tensorflow.predict_ab(reference))
    engines, seconds = {"tensorflow": tensorflow}, {}
    for name in candidates[1:]:
        try:
            engines[name] = _build(name, model, reference_ab, reference)
        except Exception as e:  # a converter's or runtime's own failure: measured as not available
            logger.info("engine auto: %s left out (%s)", name, str(e).splitlines()[0][:200])
    x = _reference(model, batch_size)
    for name, candidate in engines.items():
        seconds[name] = _seconds(candidate, x)
    best = min(seconds, key=seconds.get)
    with _choices_db() as db:
        db.execute(
            "INSERT OR REPLACE INTO choices VALUES (?, ?, ?, ?, ?, ?)",
            (machine_key(), key, batch_size, best, json.dumps(seconds), time.strftime("%Y-%m-%dT%H:%M:%S")),
        )
    logger.info("engine auto: %s (measured once for this machine and model: %s)", best, _format(seconds))
    return engines[best]


def _format(seconds):
    return ", ".join(f"{name} {value:.3f} s" for name, value in sorted(seconds.items(), key=lambda item: item[1]))

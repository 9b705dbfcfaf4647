"""Exports of a trained generator for serving, each checked in its own runtime.

    keras-colour export RUN_DIR --format keras|savedmodel|onnx|litert --output PATH [--size H W | --dynamic]

Every export is float32 (a generator trained under a mixed policy is rebuilt in float32), has built-in layers
only with spectral norm folded into plain kernels (`models.export.inference_generator`), and maps L_n
`(B, H, W, 1)` (L / 50 - 1) to ab_n `(B, H, W, 2)` (ab / 110). After writing, the file is loaded back in the
runtime that serves it (Keras, TensorFlow's SavedModel loader, onnxruntime, LiteRT's interpreter) and run on a
real grayscale photograph; the export is kept only when it agrees with the Keras model to `TOLERANCE`.
"""

import json
import logging
import os
import shutil
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_colour import colour
from keras_colour.errors import ModelFileError, UserError
from keras_colour.io_utils import TEMP_MARK, atomic_write_text
from keras_colour.models.export import inference_generator
from keras_colour.models.fast import fast_twin
from keras_colour.quiet import stderr_silenced

FORMATS = ("keras", "savedmodel", "onnx", "litert")
SUFFIXES = {"keras": ".keras", "savedmodel": "", "onnx": ".onnx", "litert": ".tflite"}
TOLERANCE = 1e-4
_EXTRA = 'pip install -e ".[export]"'


class ExportError(UserError):
    """An export cannot be made or does not agree with the Keras model; nothing was left at the output."""


def _require(module, fmt):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ExportError(f"--format {fmt} needs the {module!r} package: {_EXTRA}") from None


def size_multiple(model):
    """The factor every spatial size must be a multiple of (2 ** the generator's downsamplings)."""
    size = model.input_shape[1]
    smallest = min(
        layer.output.shape[1]
        for layer in model.layers
        if len(getattr(layer.output, "shape", ())) == 4 and layer.output.shape[1]
    )
    return max(1, size // smallest) if size else 1


def reference_input(height, width, batch=1):
    """L_n of scikit-image's grayscale photograph (a camera man), resized: a real image, not noise."""
    import skimage.data  # noqa: PLC0415 (only exports use it)

    gray = tf.convert_to_tensor(skimage.data.camera()[..., None], tf.float32) / 255.0
    gray = tf.image.resize(gray, (height, width), antialias=True)
    lab = colour.rgb_to_lab(tf.clip_by_value(tf.image.grayscale_to_rgb(gray), 0.0, 1.0))
    l_n = lab[..., :1] / colour.L_SCALE - 1.0
    return np.repeat(l_n.numpy()[None], batch, axis=0).astype(np.float32)


def _run_keras(path, x):
    return keras.models.load_model(path, compile=False).predict(x, verbose=0)


def _run_savedmodel(path, x):
    loaded = tf.saved_model.load(path)  # kept referenced: its variables die with it
    return loaded.serve(tf.constant(x)).numpy()


def _run_onnx(path, x):
    ort = _require("onnxruntime", "onnx")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _run_litert(path, x):
    interpreter_module = _require("ai_edge_litert.interpreter", "litert")
    with stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++
        interpreter = interpreter_module.Interpreter(model_path=path)
        detail = interpreter.get_input_details()[0]
        if tuple(detail["shape"]) != x.shape:
            interpreter.resize_tensor_input(detail["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


RUNTIMES = {"keras": _run_keras, "savedmodel": _run_savedmodel, "onnx": _run_onnx, "litert": _run_litert}


def _write(model, fmt, path):
    if fmt == "keras":
        model.save(path)
    elif fmt == "savedmodel":
        model.export(path, format="tf_saved_model", verbose=False)
    elif fmt == "onnx":
        _require("tf2onnx", "onnx")
        _require("onnxruntime", "onnx")
        logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines on every export
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes `np.object`
            model.export(path, format="onnx", verbose=False)
        _name_onnx_io(path, [t.name.split(":")[0] for t in model.inputs], ["ab"])
    else:
        _require("ai_edge_litert.interpreter", "litert")
        model.export(path, format="litert", verbose=False)


def _name_onnx_io(path, inputs, outputs):
    """Renames the ONNX graph's inputs and outputs (tf2onnx leaves `unk__690`-like names) as the Keras model's."""
    import onnx  # noqa: PLC0415 (the export extra)

    proto = onnx.load(path)
    graph = proto.graph
    renames = {old.name: new for old, new in zip(graph.input, inputs)}
    renames.update({old.name: new for old, new in zip(graph.output, outputs)})
    for value in list(graph.input) + list(graph.output):
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def _check_sizes(source, size, dynamic):
    multiple = size_multiple(source)
    if size is None:
        size = source.input_shape[1:3]
        if None in size:
            raise ExportError("the model has no fixed input size: give --size H W or --dynamic")
    height, width = size
    if height % multiple or width % multiple:
        raise ExportError(f"--size {height} {width}: both must be multiples of {multiple} for this generator")
    checked = [(height, width)]
    if dynamic:  # a second, non-square size proves the spatial size is free
        checked.append((height + multiple, 2 * width))
    return (height, width), checked


def export_generator(model, fmt, output, size=None, dynamic=False, overwrite=False, low_resolution=False):
    """Writes `model` (a generator) in `fmt` to `output` and checks it in its runtime.

    Args:
        model: a colourisation generator (`keras.Model` from L_n to ab_n, or a dict with `ab`).
        fmt: one of `FORMATS`.
        output: the file (a folder for `savedmodel`) to write.
        size: `(height, width)` of the exported input; `None` keeps the model's training size.
        dynamic: any spatial size (checked at two sizes). LiteRT needs a fixed size.
        overwrite: replace an existing `output`.
        low_resolution: export the graph with each upsample + 4x4 convolution pair as one 3x3 convolution at the
            lower resolution (`keras_colour.models.fast`; the same function, fewer multiply-adds: what the
            ONNX Runtime and LiteRT engines run). Not for `keras`, whose file must hold built-in layers only.

    Returns:
        A report dict: format, path, input shape, checked sizes, max |difference| from the Keras model per size.

    Raises:
        ExportError: unknown format, bad size, missing runtime package, or an export that disagrees with the
        Keras model by more than `TOLERANCE` (then nothing is left at `output`).
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "litert" and dynamic:
        raise ExportError(
            "--format litert needs a fixed size (give --size H W or leave it out): with a free spatial size the "
            "converter keeps TensorFlow (Flex) convolutions, which LiteRT's interpreter cannot run"
        )
    output = os.path.abspath(output)
    if os.path.exists(output) and not overwrite:
        raise ExportError(f"{output!r} exists; pass --overwrite to replace it")
    if fmt != "savedmodel" and os.path.isdir(output):
        raise ExportError(f"{output!r} is a folder; --format {fmt} writes one file (e.g. generator{SUFFIXES[fmt]})")
    if fmt == "keras" and not output.endswith(".keras"):
        raise ExportError(f"{output!r}: a Keras model file must end in .keras")
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    (height, width), checked = _check_sizes(model, size, dynamic)
    served = inference_generator(model, (None, None) if dynamic else (height, width))
    if low_resolution:
        if fmt == "keras":
            raise ExportError("a .keras export holds built-in layers only: it cannot have low-resolution convolutions")
        served = fast_twin(served)
    tmp = os.path.join(parent, f"{os.path.basename(output)}{TEMP_MARK}{os.getpid()}{SUFFIXES[fmt]}")
    _remove(tmp)
    report = {
        "format": fmt,
        "path": output,
        "input_shape": [None, None if dynamic else height, None if dynamic else width, 1],
        "dtype": "float32",
        "tolerance": TOLERANCE,
        "max_abs_diff": {},
    }
    try:
        inputs = [reference_input(h, w, batch=1) for h, w in checked]
        outputs = [served.predict(x, verbose=0) for x in inputs]  # also builds the model, which onnx needs
        _write(served, fmt, tmp)
        for (h, w), x, expected in zip(checked, inputs, outputs):
            got = np.asarray(RUNTIMES[fmt](tmp, x))
            if got.shape != expected.shape:
                raise ExportError(f"the {fmt} export returned shape {got.shape}, expected {expected.shape}")
            diff = float(np.max(np.abs(got - expected)))
            report["max_abs_diff"][f"{h}x{w}"] = diff
            if not diff <= TOLERANCE:
                raise ExportError(f"the {fmt} export differs from the Keras model by {diff:.2e} at {h}x{w}")
        if os.path.exists(output):
            _remove(output)
        os.replace(tmp, output)
    except (UserError, ModelFileError):
        raise
    except Exception as e:  # a converter's own error: say which format and keep the message
        raise ExportError(f"the {fmt} export failed ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
    finally:
        _remove(tmp)
    atomic_write_text(_report_path(output), json.dumps(report, indent=2))
    return report


def _report_path(output):
    return output.rstrip(os.sep) + ".json"

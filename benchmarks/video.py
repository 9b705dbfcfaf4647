"""Frames per second of `keras-colour colourise` on a video: float32 (on an engine) / bfloat16, temporal off / on.

    python benchmarks/video.py [--size 720 1280] [--frames 48] [--model generator.keras] [--json out.json]

The clip is made here from scikit-image's photographs (a pan and zoom over each of two, with a hard cut),
grayscale, written as a lossless .mkv; the output is a lossless .mkv too. The whole command is timed: decoding,
the model (256x256 Gorriz generator with IBN and spectral norm, random weights unless --model: speed does not
depend on the weights), optical flow, full-resolution composition and encoding. The first frames (tracing)
are run once before timing.
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import skimage.data

from keras_colour.engines import ENGINES, choose_engine, machine_line
from keras_colour.models import build_generator
from keras_colour.models.export import plain_generator
from keras_colour.precision import bfloat16_units
from keras_colour.video import colourise_video
from keras_colour.video.clips import grayscale, two_shot_clip
from keras_colour.video.io import VideoFileWriter


def make_clip(path, size, frames):
    clip, _ = two_shot_clip(skimage.data.astronaut(), skimage.data.coffee(), size, frames // 2)
    writer = VideoFileWriter(path, 25.0, size[1], size[0])
    for frame in grayscale(clip):
        writer.write(frame)
    return writer.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--model", default=None, help="a generator.keras (default: random 256x256 Gorriz)")
    parser.add_argument("--model-size", type=int, default=256, help="input size of the random generator")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--engine", default="auto", choices=ENGINES, help="float32 engine (default auto)")
    parser.add_argument("--bfloat16", action=argparse.BooleanOptionalAction, default=None,
                        help="also time bfloat16 (default: where the CPU has bfloat16 units)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.model:
        model = keras.models.load_model(args.model, compile=False)
    else:
        depth = min(7, args.model_size.bit_length() - 2)  # the thesis's 7 halvings at 256, fewer when smaller
        model = plain_generator(
            build_generator("gorriz", args.model_size, norm="ibn", spectral_norm=True, num_downsamples=depth)
        )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source = make_clip(os.path.join(tmp, "clip.mkv"), tuple(args.size), args.frames)
        warm = make_clip(os.path.join(tmp, "warm.mkv"), tuple(args.size), 2 * min(args.batch_size, 4))
        os.environ.setdefault("KERAS_COLOUR_CACHE", os.path.join(tmp, "cache"))  # auto measures afresh
        with_bf16 = args.bfloat16 or (args.bfloat16 is None and bfloat16_units())
        precisions = ["float32"] + (["bfloat16"] if with_bf16 else [])
        for precision in precisions:
            for temporal, keyframes in ((False, 1), (True, 1), (True, 2)):
                engine = args.engine if precision == "float32" else "tensorflow"
                options = dict(temporal=temporal, precision=precision, batch_size=args.batch_size, progress=False,
                               keyframe_interval=keyframes, engine=engine)  # fmt: skip
                colourise_video(model, warm, os.path.join(tmp, "warm_out.mkv"), **options)  # trace
                start = time.perf_counter()
                result = colourise_video(model, source, os.path.join(tmp, "out.mkv"), **options)
                elapsed = time.perf_counter() - start
                rows.append(
                    {"precision": result.precision, "temporal": temporal, "keyframe_interval": keyframes,
                     "engine": choose_engine(model, engine, args.batch_size).name,
                     "frames": result.frames,
                     "seconds": round(elapsed, 3), "frames_per_s": round(result.frames / elapsed, 2)}
                )  # fmt: skip
    height, width = args.size
    print(machine_line())
    print(f"colourise video: {args.frames} frames of {width}x{height}, generator input {model.input_shape[1:3]}")
    print("| precision | engine | temporal | model runs on | frames/s | seconds |")
    print("|---|---|---|---|---:|---:|")
    for row in rows:
        print(
            f"| {row['precision']} | {row['engine']} | {'on' if row['temporal'] else 'off'} | "
            f"{'every frame' if row['keyframe_interval'] == 1 else 'every other frame'} | {row['frames_per_s']} | "
            f"{row['seconds']} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"size": [height, width], "frames": args.frames, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()

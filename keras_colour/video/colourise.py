"""Colourise a video file or a folder of numbered frames, with temporal consistency.

Each frame is colourised as a photograph is (the model at its own size, its ab upsampled and joined to the
frame's own full-resolution L), in batches; with `temporal=True` the `TemporalFilter` carries colours along
the optical flow so they do not flicker, and starts afresh at scene cuts. The output has the source's size,
frame rate and frame count; a video's audio is copied when ffmpeg is available.
"""

import dataclasses
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from tqdm import tqdm

from keras_colour.colourise import (
    COMPOSE_THREADS,
    check_output_folder,
    collect_inputs,
    colourise_paths,
    compose,
    plan_outputs,
    predict_frames_ab,
)
from keras_colour.data.images import walk_images
from keras_colour.interrupt import InterruptFlag
from keras_colour.precision import Precision
from keras_colour.video.io import (
    VIDEO_EXTENSIONS,
    FrameFolder,
    FrameFolderWriter,
    VideoError,
    VideoFileWriter,
    copy_audio,
    is_frame_folder,
    is_video,
    open_frames,
)
from keras_colour.video.temporal import TemporalFilter, work_size

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class VideoResult:
    """What colourising one video or frame folder did: output, frames, size, rate, time, cuts, precision, audio."""

    source: str
    output: str
    frames: int
    fps: float
    width: int
    height: int
    temporal: bool
    scene_cuts: list
    precision: str
    audio: str
    seconds: float = 0.0


def output_path(source, output_dir, container=None):
    """Where `source`'s colour version goes: its name in `output_dir` (frames: the folder's name).

    `container` (`mkv`, `mp4`, `avi`, `mov`) changes a video's extension; `.webm` becomes `.mkv`.
    """
    name = os.path.basename(os.path.normpath(source))
    if not os.path.isdir(source):
        stem, ext = os.path.splitext(name)
        ext = f".{container}" if container else ".mkv" if ext.lower() == ".webm" else ext
        name = stem + ext
    target = os.path.join(output_dir, name)
    if os.path.realpath(target) == os.path.realpath(source):
        raise VideoError(f"the output {target!r} would overwrite the input; choose another --output folder")
    return target


def _batches(frames, size, first=None):
    """Lists of `size` frames (the first list `first` frames)."""
    batch, want = [], first or size
    for frame in frames:
        batch.append(frame)
        if len(batch) == want:
            yield batch
            batch, want = [], size
    if batch:
        yield batch


def colourise_video(
    model,
    source,
    target,
    temporal=True,
    batch_size=8,
    fps=25.0,
    precision="auto",
    progress=True,
    keyframe_interval=2,
    engine="auto",
):
    """Colourises `source` (a video file or a folder of numbered frames) into `target`.

    Args:
        model: a generator (`colourise.load_generator`).
        source: a video file OpenCV reads (mp4, avi, mov, mkv, webm) or a folder of numbered frames.
        target: the output video file or, for frames, a folder of PNGs. The extension picks the container and
            codec: lossless FFV1 for .mkv and .avi, H.264 (ffmpeg) or MPEG-4 Part 2 (OpenCV) for .mp4 and .mov.
        temporal: remove flicker with `TemporalFilter` (frame by frame when False).
        batch_size: frames per batch (an even number with `keyframe_interval=2`).
        keyframe_interval: with `temporal`, run the model on every frame (1) or on every other frame (2, the
            default: about 1.4x the frames per second), the frames in between getting the predictions on either
            side carried along the optical flow (`TemporalFilter.between`); a frame in between that starts a
            new shot is predicted on its own. Without `temporal` every frame is predicted.
        fps: frame rate of a frame folder (a video keeps its own).
        precision: `float32`, `bfloat16` or `auto` (see `keras_colour.precision`).
        engine: `auto`, `tensorflow`, `onnxruntime` or `litert` (see `keras_colour.engines`).
        progress: show a progress bar with frames per second.

    Returns:
        A `VideoResult`.

    Raises:
        VideoError: the source cannot be opened, ends before its declared length, or a frame cannot be read;
            the frames finished so far are kept (the message says where).
    """
    if keyframe_interval not in (1, 2):
        raise ValueError(f"keyframe_interval must be 1 or 2, got {keyframe_interval!r}")
    start = time.perf_counter()
    frames = open_frames(source, fps)
    runner = Precision(model, precision, engine, batch_size, images=frames.frame_count or None)
    if isinstance(frames, FrameFolder):
        writer = FrameFolderWriter(target, frames.names)
    else:
        writer = VideoFileWriter(target, frames.fps, frames.width, frames.height)
    smoother = TemporalFilter() if temporal else None
    skipping = temporal and keyframe_interval == 2
    if skipping:
        batch_size += batch_size % 2  # batches end on a predicted frame, so each skipped one has both neighbours
    height, width = work_size(frames.height, frames.width)
    bar = tqdm(total=frames.frame_count or None, desc=os.path.basename(source), unit="frame", disable=not progress)
    last = {"prediction": None}  # the latest model-size prediction, across batches

    def to_work(ab):
        return cv2.resize(np.asarray(ab, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)

    def smooth(batch, predictions):
        """The model-size base and working-size correction of each frame, through the temporal filter."""
        grays = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (width, height), cv2.INTER_AREA) for f in batch]
        bases, corrections = [], []
        for i, (frame, ab) in enumerate(zip(batch, predictions)):
            stand_in = following = None
            if ab is None:  # skipped by the model: carried from the predictions on either side
                following = predictions[i + 1] if i + 1 < len(batch) else None
                neighbour = (grays[i + 1], to_work(following)) if following is not None else ()
                stand_in = smoother.between(grays[i], *neighbour)
                if stand_in is None:  # a new shot starts here: a prediction of its own
                    ab = runner.predict(lambda m, f=frame: predict_frames_ab(m, [f]))[0]
            if stand_in is None:
                last["prediction"] = ab
                bases.append(ab)
                corrections.append(smoother(grays[i], to_work(ab)))
                continue
            work, motion = stand_in
            correction = smoother(grays[i], work, motion)
            # The model-size detail comes from the neighbours' predictions, the carried colours from the
            # correction (at the working size).
            base = last["prediction"] if following is None else 0.5 * (last["prediction"] + following)
            bases.append(base)
            corrections.append(work - to_work(base) + (0.0 if correction is None else correction))
        return bases, corrections

    def finish(batch, predictions):  # in frame order, on one thread, while the next batch is decoded and predicted
        if smoother is None:
            bases, corrections = predictions, [None] * len(batch)
        else:
            bases, corrections = smooth(batch, predictions)
        # The full-resolution composition runs on one core per frame (XLA's fused loops): frames in parallel.
        for rgb8 in composer.map(compose, batch, bases, corrections):
            writer.write(rgb8)
            bar.update(1)

    pending = None
    stop = InterruptFlag()
    index = 0  # of the batch's first frame in the video
    try:
        with ThreadPoolExecutor(max_workers=1) as finisher, ThreadPoolExecutor(COMPOSE_THREADS) as composer:
            for batch in _batches(frames, batch_size, first=batch_size + 1 if skipping else None):
                if stop.requested:  # Ctrl-C, read here: a KeyboardInterrupt raised inside TensorFlow can be lost
                    raise KeyboardInterrupt
                keys = [i for i in range(len(batch)) if not skipping or (index + i) % 2 == 0]
                predicted = (
                    runner.predict(lambda m, b=[batch[i] for i in keys]: predict_frames_ab(m, b)) if keys else []
                )
                predictions = [None] * len(batch)
                for i, ab in zip(keys, predicted):
                    predictions[i] = ab
                index += len(batch)
                if pending is not None:
                    pending.result()  # at most one batch waits: memory stays bounded, errors surface here
                pending = finisher.submit(finish, batch, predictions)
            if pending is not None:
                pending.result()
    except KeyboardInterrupt:
        stop.restore()
        bar.close()
        kept = writer.abort()
        logger.warning("Interrupted: the %d frame(s) done are kept in %s", writer.frames_written, kept)
        raise
    except (VideoError, OSError) as e:
        stop.restore()
        bar.close()
        kept = writer.abort()
        raise VideoError(f"{source}: {e}; the {writer.frames_written} frame(s) done are kept in {kept!r}") from e
    except Exception:
        stop.restore()
        kept = writer.abort()
        logger.error("colourising %s failed; the %d frame(s) done are kept in %s", source, writer.frames_written, kept)
        raise
    stop.restore()
    bar.close()
    if writer.frames_written == 0:
        writer.abort()
        raise VideoError(f"{source!r} has no readable frames")
    if frames.truncated:
        kept = writer.abort()
        raise VideoError(
            f"{source!r} ends after {frames.frames_read} of its {frames.frame_count} frames (cut short or damaged); "
            f"the {writer.frames_written} colourised frames are kept in {kept!r}"
        )
    path = writer.close()
    audio = "frames have no audio" if isinstance(frames, FrameFolder) else copy_audio(source, path)
    return VideoResult(
        source=source,
        output=path,
        frames=writer.frames_written,
        fps=frames.fps,
        width=frames.width,
        height=frames.height,
        temporal=temporal,
        scene_cuts=list(smoother.cuts) if smoother else [],
        precision=runner.used or precision,
        audio=audio,
        seconds=time.perf_counter() - start,
    )


def colourise_media(
    model, inputs, output_dir, temporal=True, frames=False, container=None, fps=25.0, keyframe_interval=2, **options
):
    """Colourises photographs, folders of photographs, videos and (with `frames=True`) frame folders.

    Videos and frame folders go through `colourise_video` (each into `output_path(source, output_dir,
    container)`, with `temporal` and `keyframe_interval`); everything else through
    `keras_colour.colourise.colourise_paths`. A folder's videos (at any depth) are colourised too, into the
    same relative place under `output_dir` as its photographs. `options` are the shared ones: `batch_size`,
    `precision`, `engine`, `progress`, and `png_compression` for photographs.

    Returns:
        `(written image paths, skipped image paths, [VideoResult, ...])`.
    """
    jobs, photos = _plan_media(inputs, output_dir, frames, container)
    video_options = {k: v for k, v in options.items() if k != "png_compression"}
    results = [
        colourise_video(
            model, source, target, temporal=temporal, fps=fps, keyframe_interval=keyframe_interval, **video_options
        )  # fmt: skip
        for source, target in jobs
    ]
    written, skipped = colourise_paths(model, photos, output_dir, **options) if photos else ([], [])
    return written, skipped, results


def _plan_media(inputs, output_dir, frames, container):
    """`([(video or frame folder, output)], [photograph inputs])`, with every video output checked first."""
    check_output_folder(inputs, output_dir)
    jobs, photos = [], []
    for given in inputs:
        if is_video(given) or (frames and is_frame_folder(given)):
            jobs.append((given, output_path(given, output_dir, container)))
        elif os.path.isdir(given):
            found = list(walk_images(given, VIDEO_EXTENSIONS, skip_dirs=(output_dir,)))
            for path, rel in found:
                jobs.append((path, output_path(path, os.path.join(output_dir, os.path.dirname(rel)), container)))
            if not found or next(walk_images(given, skip_dirs=(output_dir,)), None) is not None:
                photos.append(given)  # (a folder with nothing in it gets colourise_paths's error)
        else:
            photos.append(given)
    if frames and not [source for source, _ in jobs if os.path.isdir(source)]:
        raise VideoError(f"frames=True (--frames): no folder of numbered frames among {list(inputs)}")
    plan_outputs(collect_inputs(photos, output_dir), output_dir, warn=False)  # checked before any video is written
    targets = {}
    for source, target in jobs:
        if target in targets:
            raise VideoError(
                f"{source!r} and {targets[target]!r} would both be written to {target!r}; colourise them into "
                "different --output folders (or leave out --container)"
            )
        targets[target] = source
    return jobs, photos

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

from keras_colour.colourise import COMPOSE_THREADS, colourise_paths, compose, predict_frames_ab
from keras_colour.interrupt import InterruptFlag
from keras_colour.precision import Precision
from keras_colour.video.io import (
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


def _batches(frames, size):
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def colourise_video(model, source, target, temporal=True, batch_size=8, fps=25.0, precision="auto", progress=True):
    """Colourises `source` (a video file or a folder of numbered frames) into `target`.

    Args:
        model: a generator (`colourise.load_generator`).
        source: a video file OpenCV reads (mp4, avi, mov, mkv, webm) or a folder of numbered frames.
        target: the output video file or, for frames, a folder of PNGs. The extension picks the container and
            codec: lossless FFV1 for .mkv and .avi, H.264 (ffmpeg) or MPEG-4 Part 2 (OpenCV) for .mp4 and .mov.
        temporal: remove flicker with `TemporalFilter` (frame by frame when False).
        batch_size: frames per forward pass.
        fps: frame rate of a frame folder (a video keeps its own).
        precision: `float32`, `bfloat16` or `auto` (see `keras_colour.precision`).
        progress: show a progress bar with frames per second.

    Returns:
        A `VideoResult`.

    Raises:
        VideoError: the source cannot be opened, ends before its declared length, or a frame cannot be read;
            the frames finished so far are kept (the message says where).
    """
    start = time.perf_counter()
    frames = open_frames(source, fps)
    if isinstance(frames, FrameFolder):
        writer = FrameFolderWriter(target, frames.names)
    else:
        writer = VideoFileWriter(target, frames.fps, frames.width, frames.height)
    runner = Precision(model, precision)
    smoother = TemporalFilter() if temporal else None
    height, width = work_size(frames.height, frames.width)
    bar = tqdm(total=frames.frame_count or None, desc=os.path.basename(source), unit="frame", disable=not progress)

    def finish(batch, predictions):  # in frame order, on one thread, while the next batch is decoded and predicted
        corrections = []
        for frame, ab in zip(batch, predictions):
            correction = None
            if smoother is not None:
                gray = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (width, height), cv2.INTER_AREA)
                ab_work = cv2.resize(np.asarray(ab), (width, height), interpolation=cv2.INTER_LINEAR)
                correction = smoother(gray, ab_work)
            corrections.append(correction)
        # The full-resolution composition runs on one core per frame (XLA's fused loops): frames in parallel.
        for rgb8 in composer.map(compose, batch, predictions, corrections):
            writer.write(rgb8)
            bar.update(1)

    pending = None
    stop = InterruptFlag()
    try:
        with ThreadPoolExecutor(max_workers=1) as finisher, ThreadPoolExecutor(COMPOSE_THREADS) as composer:
            for batch in _batches(frames, batch_size):
                if stop.requested:  # Ctrl-C, read here: a KeyboardInterrupt raised inside TensorFlow can be lost
                    raise KeyboardInterrupt
                predictions = runner.predict(lambda m, b=batch: predict_frames_ab(m, b))
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


def colourise_media(model, inputs, output_dir, temporal=True, frames=False, container=None, fps=25.0, **options):
    """Colourises photographs, folders of photographs, videos and (with `frames=True`) frame folders.

    Videos and frame folders go through `colourise_video` (each into `output_path(source, output_dir,
    container)`); everything else through `keras_colour.colourise.colourise_paths`. `options` are the shared
    ones: `batch_size`, `precision`, `progress`, and `png_compression` for photographs.

    Returns:
        `(written image paths, skipped image paths, [VideoResult, ...])`.
    """
    videos = [p for p in inputs if is_video(p) or (frames and is_frame_folder(p))]
    if frames and not [p for p in videos if os.path.isdir(p)]:
        raise VideoError(f"frames=True (--frames): no folder of numbered frames among {list(inputs)}")
    photos = [p for p in inputs if p not in videos]
    video_options = {k: v for k, v in options.items() if k != "png_compression"}
    results = [
        colourise_video(model, v, output_path(v, output_dir, container), temporal=temporal, fps=fps, **video_options)
        for v in videos
    ]
    written, skipped = colourise_paths(model, photos, output_dir, **options) if photos else ([], [])
    return written, skipped, results

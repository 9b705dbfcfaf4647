"""`keras-colour evaluate-video`: flicker (warping error, Lai et al. 2018) and PSNR per frame of a video."""

import csv
import dataclasses
import itertools
import math

import numpy as np

from keras_colour.metrics import psnr_rgb
from keras_colour.video.flow import Flow, as_gray8, warp
from keras_colour.video.io import VideoError, open_frames


def warping_errors(frames, flow_frames=None, preset="medium"):
    """Per-pair warping errors `[E_1, ..., E_{T-1}]` of `frames` (see `warping_error`).

    Args:
        frames: a sequence of RGB frames, uint8 or float in [0, 1], all of one size.
        flow_frames: frames (gray or RGB) to measure motion on; defaults to `frames`.
        preset: DIS flow preset (`ultrafast`, `fast`, `medium`).

    Returns:
        A list of floats, one per consecutive pair; a pair with no trusted pixel (a scene cut) gives `nan`.
    """
    flow = Flow(preset)
    errors, previous = [], None
    for frame, flow_frame in _paired(frames, flow_frames):
        value = np.asarray(frame, np.float32) / (255.0 if np.asarray(frame).dtype == np.uint8 else 1.0)
        gray = as_gray8(flow_frame)
        if previous is not None:
            sampling, mask = flow.backward(gray, previous[1])
            squared = np.sum((value - warp(previous[0], sampling)) ** 2, axis=-1)
            trusted = mask.sum()
            errors.append(float((squared * mask).sum() / trusted) if trusted else float("nan"))
        previous = value, gray
    return errors


def _paired(frames, others):
    """Zips two frame streams (the second defaults to the first), refusing streams of different lengths."""
    if others is None:
        yield from ((f, f) for f in frames)
        return
    missing = object()
    for a, b in itertools.zip_longest(frames, others, fillvalue=missing):
        if a is missing or b is missing:
            raise ValueError("the two frame sequences have different lengths")
        yield a, b


def warping_error(frames, flow_frames=None, preset="medium"):
    """Mean warping error over the frame pairs that have trusted pixels; lower is steadier.

    Temporal flicker (Lai et al. 2018, "Learning Blind Video Temporal Consistency", eq. 7):
    `E = 1/(T-1) sum_t sum_i M_t(i) ||V_t(i) - warp(V_{t-1})(i)||^2 / sum_i M_t(i)` on RGB in [0, 1], where the
    warp follows the optical flow from frame t back to t-1 and `M_t` keeps the non-occluded pixels
    (forward-backward check, `keras_colour.video.flow`). Flow is measured on the grayscale input frames when
    given (they are what the colours must follow), else on the frames themselves.
    """
    errors = [e for e in warping_errors(frames, flow_frames, preset) if np.isfinite(e)]
    return float(np.mean(errors)) if errors else float("nan")


@dataclasses.dataclass
class VideoEvaluation:
    """Per-frame warping errors (and PSNR against a reference, when given) of one colourised video."""

    video: str
    warping: list  # per frame; frame 0 has none
    psnr: list  # per frame, or empty without a reference
    motion_from: str

    @property
    def warping_error(self):
        values = [e for e in self.warping[1:] if math.isfinite(e)]
        return float(np.mean(values)) if values else float("nan")

    @property
    def mean_psnr(self):
        return float(np.mean(self.psnr)) if self.psnr else None

    def rows(self):
        for i, e in enumerate(self.warping):
            yield {"frame": i, "warping_error": e, "psnr": self.psnr[i] if self.psnr else None}

    def table(self):
        lines = ["| frame | warping error | PSNR (dB) |", "|---:|---:|---:|"]
        for row in self.rows():
            e = "" if row["frame"] == 0 else f"{row['warping_error']:.6f}"
            p = "" if row["psnr"] is None else f"{row['psnr']:.2f}"
            lines.append(f"| {row['frame']} | {e} | {p} |")
        summary = f"{self.video}: {len(self.warping)} frames, warping error {self.warping_error:.6f}"
        summary += f" (motion from {self.motion_from}; Lai et al. 2018, RGB in [0, 1], lower is steadier)"
        if self.psnr:
            summary += f", mean PSNR {self.mean_psnr:.2f} dB against the reference"
        return "\n".join(lines + ["", summary])


def _frames(path, what, like=None):
    try:
        frames = open_frames(path)
    except VideoError as e:
        raise VideoError(f"{what}: {e}") from None
    if like is not None and (frames.width, frames.height) != (like.width, like.height):
        raise VideoError(
            f"{what} {path!r} is {frames.width}x{frames.height}, the video {like.width}x{like.height}: they must match"
        )
    return frames


def evaluate_video(video, input_source=None, reference=None, csv_path=None):
    """Warping error of each frame against the previous one, and PSNR against `reference` when given.

    Frames are streamed (two in memory at a time), so a feature film can be measured.
    """
    output = _frames(video, "video")
    motion = _frames(input_source, "--input", like=output) if input_source else None
    truth = _frames(reference, "--reference", like=output) if reference else None
    psnr = []

    def measured():
        if truth is None:
            yield from output
            return
        for frame, true in itertools.zip_longest(output, truth):
            if frame is None or true is None:
                raise VideoError(f"--reference and the video have different frame counts ({reference!r}, {video!r})")
            psnr.append(psnr_rgb(true, frame))
            yield frame

    try:
        warping = [float("nan")] + warping_errors(measured(), motion)
    except ValueError as e:  # frame counts of the video and --input differ
        raise VideoError(f"--input {input_source!r} and the video {video!r}: {e}") from None
    result = VideoEvaluation(video, warping, psnr, "the input" if input_source else "the video itself")
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["frame", "warping_error", "psnr"])
            writer.writeheader()
            writer.writerows(result.rows())
    return result

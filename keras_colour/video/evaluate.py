"""`keras-colour evaluate-video`: flicker (warping error, Lai et al. 2018) and PSNR per frame of a video."""

import csv
import dataclasses
import itertools
import math

import numpy as np

from keras_colour.metrics import psnr_rgb, warping_errors
from keras_colour.video.io import VideoError, open_frames


@dataclasses.dataclass
class VideoEvaluation:
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

"""`keras-colour evaluate-video`: flicker (warping error, Lai et al. 2018) and PSNR per frame of a video."""

import csv
import dataclasses
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


def _frames(path, what):
    try:
        return open_frames(path)
    except VideoError as e:
        raise VideoError(f"{what}: {e}") from None


def evaluate_video(video, input_source=None, reference=None, csv_path=None):
    """Warping error of each frame against the previous one, and PSNR against `reference` when given."""
    output = _frames(video, "video")
    flow_source = _frames(input_source, "--input") if input_source else None
    frames = list(output)
    if flow_source is not None:
        motion = list(flow_source)
        if len(motion) != len(frames) or motion[0].shape != frames[0].shape:
            raise VideoError(
                f"--input has {len(motion)} frames of {motion[0].shape[1]}x{motion[0].shape[0]}, the video "
                f"{len(frames)} of {frames[0].shape[1]}x{frames[0].shape[0]}: they must match"
            )
    else:
        motion = None
    warping = [float("nan")] + warping_errors(frames, motion)
    psnr = []
    if reference:
        truth = list(_frames(reference, "--reference"))
        if len(truth) != len(frames) or truth[0].shape != frames[0].shape:
            raise VideoError(f"--reference has {len(truth)} frames, the video {len(frames)}: they must match")
        psnr = [psnr_rgb(t, f) for t, f in zip(truth, frames)]
    result = VideoEvaluation(video, warping, psnr, "the input" if input_source else "the video itself")
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["frame", "warping_error", "psnr"])
            writer.writeheader()
            writer.writerows(result.rows())
    return result

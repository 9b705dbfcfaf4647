"""Temporal consistency for frame-by-frame colourisation: carry colours along the motion, reset at cuts.

A colouriser that sees each frame alone gives the same coat slightly different colours from one frame to the
next: flicker. `TemporalFilter` removes it without smearing motion:

1. DIS optical flow between this frame's and the previous frame's grayscale, at a reduced working size
   (longer side at most `WORK_SIDE` pixels), from this frame back to the previous one;
2. the previous *output* ab is warped along that flow;
3. where the motion is trusted (forward-backward consistent, brightness constant, inside the frame) the
   output is `blend * warped previous + (1 - blend) * prediction`, and elsewhere (occlusions, new content) the
   prediction alone, with the trust mask's edges softened (3x3 Gaussian) so no seam shows;
4. at a scene cut (gray-level histograms differ by more than `cut_threshold` in total variation, or fewer
   than `min_trusted` of the pixels have trusted motion) nothing is carried over: the frame is exactly the
   frame-by-frame result.

With a keyframe interval of 2 (`colourise_video`'s default) the model runs on every other frame; a frame in
between gets a stand-in prediction (`between`): the predictions on either side warped onto it along the flow
and averaged where their motion is trusted, then filtered as above. A frame in between that starts a new shot
gets a prediction of its own.

The filter works on ab only: every output frame keeps its own full-resolution L. It returns a *correction*
at the working size, added to the upsampled prediction, so a frame with nothing carried over is bit for bit
the frame-by-frame one.
"""

import cv2
import numpy as np

from keras_colour.video.flow import Flow, histogram_change, warp

WORK_SIDE = 320


def work_size(height, width, side=WORK_SIDE):
    """(height, width) scaled so the longer side is at most `side` (never enlarged)."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class TemporalFilter:
    """Blends each frame's predicted ab with the previous output warped by optical flow (see the module doc).

    Args:
        blend: weight of the warped previous output where motion is trusted (0 = frame by frame).
        cut_threshold: histogram total-variation distance above which a frame starts a new shot.
        min_trusted: fraction of trusted pixels below which a frame starts a new shot.
        preset: DIS preset (`ultrafast`, `fast`, `medium`).
    """

    def __init__(self, blend=0.9, cut_threshold=0.3, min_trusted=0.2, preset="medium"):
        if not 0.0 <= blend < 1.0:
            raise ValueError(f"blend must be in [0, 1), got {blend}")
        self.blend, self.cut_threshold, self.min_trusted = blend, cut_threshold, min_trusted
        self.flow = Flow(preset)
        self.cuts = []  # indices of frames that started a new shot (after the first)
        self.reset()

    def reset(self):
        self._gray, self._ab, self._prediction, self._index = None, None, None, -1

    def __call__(self, gray, ab, motion=None):
        """One frame: `gray` uint8 (h, w) and predicted `ab` (h, w, 2) at the working size.

        `motion` is `Flow.backward(gray, previous gray)` when the caller has it already (`between` does).

        Returns:
            The correction (h, w, 2) to add to the prediction, or `None` when nothing is carried over
            (first frame, scene cut).
        """
        self._index += 1
        previous_gray, previous_ab = self._gray, self._ab
        self._gray, self._ab, self._prediction = gray, ab, ab
        if previous_gray is None:
            return None
        if previous_gray.shape != gray.shape:
            raise ValueError(f"frame size changed from {previous_gray.shape} to {gray.shape}")
        if motion is None:
            if histogram_change(previous_gray, gray) > self.cut_threshold:
                self.cuts.append(self._index)
                return None
            motion = self.flow.backward(gray, previous_gray)
        sampling, trusted = motion
        if trusted.mean() < self.min_trusted:
            self.cuts.append(self._index)
            return None
        trusted = cv2.GaussianBlur(trusted, (3, 3), 0)  # soft edges: no seam where trust ends
        weight = (self.blend * trusted)[..., None]
        correction = weight * (warp(previous_ab, sampling) - ab)
        self._ab = ab + correction
        return correction

    def between(self, gray, next_gray=None, next_ab=None):
        """A stand-in prediction for a frame the model skipped, from the predictions on either side.

        The previous frame's prediction and (when given and in the same shot) the next frame's are warped
        onto this frame along the optical flow and averaged, each weighted by where its motion is trusted.

        Returns:
            `(ab, motion)`: pass both to `__call__`; or `None` when this frame starts a new shot, so it needs
            a prediction of its own (then call `__call__` with it: the frame is exactly the frame-by-frame one).
        """
        previous_gray = self._gray
        if previous_gray is None or histogram_change(previous_gray, gray) > self.cut_threshold:
            return None
        sampling, trusted = self.flow.backward(gray, previous_gray)
        if trusted.mean() < self.min_trusted:
            return None
        total = trusted.copy()
        estimate = trusted[..., None] * warp(self._prediction, sampling)
        if next_gray is not None and histogram_change(gray, next_gray) <= self.cut_threshold:
            next_sampling, next_trusted = self.flow.backward(gray, next_gray)
            if next_trusted.mean() >= self.min_trusted:
                total += next_trusted
                estimate += next_trusted[..., None] * warp(next_ab, next_sampling)
        # Where neither side's motion is trusted, the previous prediction warped all the same.
        estimate += (total == 0)[..., None] * warp(self._prediction, sampling)
        return estimate / np.maximum(total, 1.0)[..., None], (sampling, trusted)

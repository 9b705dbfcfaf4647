"""Ctrl-C as a flag: the one SIGINT handling of training and video.

A `KeyboardInterrupt` that Python raises while the main thread is inside TensorFlow, a finaliser or a weakref
callback can be printed and ignored, so a long loop may never stop. `InterruptFlag` only records the signal;
the loop reads `requested` at a safe point (end of a step, start of a batch). A second Ctrl-C raises at once.
"""

import signal
import threading


class InterruptFlag:
    """Installs the handler (main thread only); `restore()` puts the previous one back."""

    def __init__(self, on_first=None):
        self.requested, self._previous, self._on_first = False, None, on_first
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self._on_first is not None:
            self._on_first()

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

"""Ctrl-C during training: the first press stops after the current step, the second at once.

While a :class:`StopGuard` is active (main thread only) SIGINT does not raise: the first
press sets ``requested`` and the loop stops at the next step boundary (a clean state);
a second press raises KeyboardInterrupt, except inside :meth:`StopGuard.critical` (the
optimizer update and its bookkeeping), where it is held until the section ends.
``mode`` changes this after the loop: ``"immediate"`` (the final evaluation, which comes
after the checkpoint: any press stops it at once) and ``"ignore"`` (the checkpoint and
summary are being written: presses only print a note).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

__all__ = ["StopGuard"]


class StopGuard:
    def __init__(self, message=None):
        self.requested = False
        self.mode = "defer"  # "defer" | "immediate" | "ignore"
        self._critical = 0
        self._pending = False
        self._previous = None
        self._installed = False
        self._message = message or (lambda m: print(m, file=sys.stderr, flush=True))

    def _handler(self, signum, frame):
        if self.mode == "ignore":
            self._message("\nCtrl-C: still writing the checkpoint and summary, one moment")
            return
        if self.mode == "immediate":
            raise KeyboardInterrupt
        if not self.requested:
            self.requested = True
            self._message("\nCtrl-C: stopping after this step and saving a checkpoint "
                          "(press Ctrl-C again to stop at once)")
            return
        if self._critical:
            self._pending = True
            return
        raise KeyboardInterrupt

    def __enter__(self) -> "StopGuard":
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handler)
                self._installed = True
            except (ValueError, OSError):
                self._installed = False
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    @contextlib.contextmanager
    def critical(self):
        """A section a second Ctrl-C must not cut in half (held until it ends)."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
        if not self._critical and self._pending and self.mode != "ignore":
            self._pending = False
            raise KeyboardInterrupt

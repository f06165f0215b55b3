"""SIGTERM behaves like Ctrl-C, and neither lands in the middle of the study's bookkeeping.

A study run installs :class:`StopSignals` for SIGINT and SIGTERM (from the main thread only). A signal that
arrives while the worker trains or waits (inside :meth:`StopSignals.armed`) raises ``KeyboardInterrupt``
there at once, and the trial is recorded as interrupted; one that arrives anywhere else (a storage write, a
tracker call, Optuna's bookkeeping) is noted and raised at the next safe point, so nothing is left
half-written. A second signal raises at once, wherever the worker is.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)

#: the signals that stop a study run cleanly
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM handling of one study run (a no-op outside the main thread, or when not entered)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._armed = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def name(self) -> str | None:
        """The received signal's name (``SIGTERM``), or None."""
        return signal.Signals(self.received).name if self.received is not None else None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again = self.received is not None
        self.received = self.received or signum
        if self._armed or again:
            raise KeyboardInterrupt
        log.warning("%s: stopping at the next safe point (send it again to stop at once)", signal.Signals(signum).name)

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` when a signal arrived (a safe point)."""
        if self.received is not None:
            raise KeyboardInterrupt

    @contextmanager
    def armed(self) -> Iterator[None]:
        """A stretch (training, waiting) where a signal interrupts at once."""
        self.check()
        self._armed += 1
        try:
            yield
        finally:
            self._armed -= 1

    @contextmanager
    def held(self) -> Iterator[None]:
        """A write inside an armed stretch: a signal waits until it is done, then interrupts."""
        saved, self._armed = self._armed, 0
        try:
            yield
        finally:
            self._armed = saved
        if saved:
            self.check()


__all__ = ["STOP_SIGNALS", "StopSignals"]

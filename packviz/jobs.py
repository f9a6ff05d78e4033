"""Long work on a background thread, so the page that asked for it stays usable.

A ``BackgroundJob`` runs ``work(progress)`` on a daemon thread: ``work`` calls
``progress(done, total)`` as it goes and returns its result. A page starts one,
draws ``done`` / ``total`` while it runs (a fragment on a timer) and the result
once it is there; every other widget answers meanwhile, because no script run
waits on the work.

A server is shared: ``slots`` (a semaphore) caps how many jobs of a kind run at
once, the rest wait their turn (``waiting`` says so), and a job nobody has asked
about for ``abandon_after_s`` seconds (its page closed, its settings changed)
stops at its next progress call instead of taking a core from the sessions
still there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

Result = TypeVar("Result")
Progress = Callable[[int, int], None]


class Abandoned(Exception):
    """Raised inside the work when nobody has asked for it for too long."""


class BackgroundJob(Generic[Result]):
    """``work(progress)`` on a thread of its own, at most ``slots`` such at once."""

    def __init__(self, work: Callable[[Progress], Result], slots: threading.Semaphore | None = None,
                 abandon_after_s: float = 60.0, on_done: Callable[[Result], None] | None = None) -> None:
        self.done = 0
        self.total = 0
        self.result: Result | None = None
        self.error: str | None = None
        self.abandoned = False
        # a free slot is taken here, in the asking thread: the page's first look at a job that has a slot
        # must not read "waiting" only because the new thread has not been scheduled yet
        holds_slot = slots is None or slots.acquire(blocking=False)
        self.waiting = not holds_slot
        self._abandon_after_s = abandon_after_s
        self._seen = self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(work, slots, holds_slot, on_done), daemon=True,
                                        name="packviz-job")
        self._thread.start()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if time.monotonic() - self._seen > self._abandon_after_s:
            raise Abandoned

    def _run(self, work: Callable[[Progress], Result], slots: threading.Semaphore | None, holds_slot: bool,
             on_done: Callable[[Result], None] | None) -> None:
        if not holds_slot:
            slots.acquire()
        try:
            self.waiting = False
            if time.monotonic() - self._seen > self._abandon_after_s:
                raise Abandoned  # left waiting in the queue after its page stopped asking
            result = work(self._progress)
            if on_done is not None:
                on_done(result)
            self.result = result
        except Abandoned:
            self.abandoned = True
        except Exception as error:  # a sentence for the page; the thread ends cleanly
            self.error = str(error) or type(error).__name__
        finally:
            if slots is not None:
                slots.release()

    def touch(self) -> None:
        """Someone still wants the result: keep going."""
        self._seen = time.monotonic()

    @property
    def age_s(self) -> float:
        """Seconds since the job was started."""
        return time.monotonic() - self._started

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def failed(self) -> bool:
        """Ended without a result (an error, or abandoned): ask again to start afresh."""
        return not self.running and self.result is None

    def wait(self, timeout_s: float | None = None) -> Result | None:
        """The result, waiting at most ``timeout_s`` for it (None if not there by then)."""
        self._thread.join(timeout_s)
        return self.result

"""Running slow work (database, bcrypt, ffmpeg, the network) off the UI thread.

The one hop back to the UI thread is a queued Qt signal on an object that lives there: the result (or the
error) is delivered to the callback on the UI thread, so widgets are only ever touched from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from vaultserver.errors import VaultError

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[str], None]


def describe_error(exc: BaseException) -> str:
    """The message an owner reads: a VaultError's own (the same one the API returns), else the exception."""
    if isinstance(exc, VaultError):
        return exc.message
    return str(exc) or type(exc).__name__


class _Relay(QObject):
    # One tuple (callback, result, error message): a bare None sent through a queued `object` argument
    # upsets PySide6's reference counting, a tuple holding it does not.
    finished = Signal(object)

    @Slot(object)
    def deliver(self, outcome: tuple[Callable[..., None] | None, Any, str | None]) -> None:
        callback, result, error = outcome
        if callback is not None:
            callback(result if error is None else error)


class _Job(QRunnable):
    def __init__(self, relay: _Relay, fn: Callable[[], Any], done: Done | None,
                 failed: Failed | None) -> None:
        super().__init__()
        self._relay, self._fn, self._done, self._failed = relay, fn, done, failed

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:  # reported to the owner, never lost
            if not isinstance(exc, VaultError):
                log.exception("Background task failed")
            self._relay.finished.emit((self._failed, None, describe_error(exc)))
            return
        self._relay.finished.emit((self._done, result, None))


class Tasks(QObject):
    """A small pool for the GUI's background work. Create it on the UI thread."""

    def __init__(self, parent: QObject | None = None, threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._relay.deliver)

    def run(self, fn: Callable[[], Any], done: Done | None = None, failed: Failed | None = None) -> None:
        self._pool.start(_Job(self._relay, fn, done, failed))

    def wait(self, msecs: int = 30_000) -> bool:
        return self._pool.waitForDone(msecs)

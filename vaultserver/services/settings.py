"""Reading and changing settings; listeners (the runtime, the GUI controller) hear about every change."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from vaultserver.config import AppPaths, Settings, load_settings, save_settings
from vaultserver.errors import ValidationError

log = logging.getLogger(__name__)

Listener = Callable[[Settings, Settings], None]


class SettingsService:
    def __init__(self, paths: AppPaths) -> None:
        self._paths = paths
        self._lock = threading.Lock()
        self._current = load_settings(paths)
        self._listeners: list[Listener] = []

    @property
    def current(self) -> Settings:
        return self._current

    def update(self, **changes: Any) -> Settings:
        """Validate, persist, then notify. Invalid input raises VALIDATION_001 and changes nothing."""
        unknown = sorted(set(changes) - set(Settings.model_fields))
        if unknown:
            raise ValidationError("Unknown settings: " + ", ".join(unknown), details={"fields": unknown})
        with self._lock:
            old = self._current
            new = old.updated(**changes)
            save_settings(self._paths, new)
            self._current = new
        for listener in list(self._listeners):
            listener(old, new)
        return new

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

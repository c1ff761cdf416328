"""A settings page generated from the settings declaration (`vaultserver.config.Settings`) for one section.

Labels, help text, bounds and types all come from that declaration, so a new setting appears here by itself;
the service validates (the same VALIDATION_001 message the API gives is shown under the form).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, get_origin

from pydantic.fields import FieldInfo
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gui.controller import VaultController
from vaultserver.config import Settings

# Moving the master key between keychain and file is not a form edit: the key would be left behind.
NOT_IN_FORMS = {"keystore"}

# One editor per kind of setting: a switch, a whole or decimal number, a list (one per line), or text.
Editor = QCheckBox | QSpinBox | QDoubleSpinBox | QPlainTextEdit | QLineEdit


def _declared(field: FieldInfo) -> dict[str, Any]:
    """The label and section a setting declares (`config` always gives a dict, never pydantic's callable)."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def section_fields(section: str) -> list[str]:
    return [name for name, f in Settings.model_fields.items()
            if _declared(f).get("section") == section and name not in NOT_IN_FORMS]


def _bounds(name: str) -> tuple[float | None, float | None]:
    low = high = None
    for item in Settings.model_fields[name].metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    return low, high


class SettingsForm(QWidget):
    """The section's settings (`only` some of them, or all but `leave_out`: a group that shows some of them
    its own way takes them out of the generic form, so none is shown twice)."""

    def __init__(self, controller: VaultController, section: str, parent: QWidget | None = None, *,
                 only: Collection[str] | None = None, leave_out: Collection[str] = ()) -> None:
        super().__init__(parent)
        self.controller = controller
        self.fields = [name for name in section_fields(section)
                       if (only is None or name in only) and name not in leave_out]
        self.editors: dict[str, Editor] = {}
        form = QFormLayout()
        for name in self.fields:
            info = Settings.model_fields[name]
            editor = self._editor(name, info.annotation)
            if name == "import_dir" and isinstance(editor, QLineEdit):  # empty means the default: show which
                editor.setPlaceholderText(str(controller.paths.default_imports))
            editor.setToolTip(info.description or "")
            editor.setAccessibleName(name)
            self.editors[name] = editor
            label = QLabel(str(_declared(info).get("label", name)))
            label.setToolTip(info.description or "")
            form.addRow(label, editor)
        self.apply_button = QPushButton("Apply")
        self.apply_button.clicked.connect(self.apply)
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(self.load)
        self.result = QLabel()
        self.result.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.result, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        self.load()
        controller.settings_changed.connect(lambda _settings: self.load())

    def _editor(self, name: str, annotation: Any) -> Editor:
        low, high = _bounds(name)
        if annotation is bool:
            return QCheckBox()
        if annotation is int:
            whole = QSpinBox()
            whole.setRange(int(low if low is not None else 0), int(high if high is not None else 1_000_000))
            return whole
        if annotation is float:
            decimal = QDoubleSpinBox()
            decimal.setDecimals(1)
            decimal.setRange(low if low is not None else 0.0, high if high is not None else 1e6)
            return decimal
        if get_origin(annotation) is list:
            lines = QPlainTextEdit()
            lines.setPlaceholderText("One per line")
            lines.setFixedHeight(80)
            return lines
        return QLineEdit()

    def load(self) -> None:
        current = self.controller.services.settings.current
        for name, editor in self.editors.items():
            value = getattr(current, name)
            if isinstance(editor, QCheckBox):
                editor.setChecked(value)
            elif isinstance(editor, QSpinBox | QDoubleSpinBox):
                editor.setValue(value)
            elif isinstance(editor, QPlainTextEdit):
                editor.setPlainText("\n".join(value))
            else:
                editor.setText(str(value))

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, editor in self.editors.items():
            if isinstance(editor, QCheckBox):
                values[name] = editor.isChecked()
            elif isinstance(editor, QSpinBox | QDoubleSpinBox):
                values[name] = editor.value()
            elif isinstance(editor, QPlainTextEdit):
                values[name] = [line.strip() for line in editor.toPlainText().splitlines() if line.strip()]
            else:
                values[name] = editor.text().strip()
        return values

    def changes(self) -> dict[str, Any]:
        current = self.controller.services.settings.current
        return {k: v for k, v in self.values().items() if getattr(current, k) != v}

    def apply(self) -> None:
        changes = self.changes()
        if not changes:
            self._show("Nothing to change.", ok=True)
            return
        self.apply_button.setEnabled(False)
        self.controller.update_settings(changes, self._applied, self._refused)

    def _applied(self, _settings: Settings) -> None:
        self.apply_button.setEnabled(True)
        self._show("Saved.", ok=True)

    def _refused(self, message: str) -> None:
        self.apply_button.setEnabled(True)
        self._show(message, ok=False)

    def _show(self, text: str, ok: bool) -> None:
        self.result.setText(text)
        self.result.setStyleSheet("color: #15803d" if ok else "color: #b91c1c")

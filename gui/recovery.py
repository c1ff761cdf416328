"""The recovery key as the owner meets it: its words, what they are for, Print… and Copy, then a check that
they were kept (three of them typed back); and, to restore or deep-check a backup, the whole key typed in.
The first-run wizard, the Security tab and the Storage tab's Backups use these pieces.

The phrase lives only in these widgets while they are open: `clear()` empties them, and the clipboard if it
still holds the phrase, when they close. It is never logged.
"""

from __future__ import annotations

import html
import random
from collections.abc import Sequence
from datetime import date

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QTextDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from vaultserver.errors import VaultError
from vaultserver.services.keys import PHRASE_WORDS, check_phrase

COLUMNS = 4
CHECKED_WORDS = 3
PURPOSE = (f"With a backup, these {PHRASE_WORDS} words are all it takes to get your photos and videos back "
           "on a new Mac. Vault keeps no copy of them: print them or write them down, and keep the paper "
           "somewhere safe, away from this Mac. Anyone with these words and a backup can open your library.")
RESTORING = ("To restore on a new Mac: install Vault, choose “Restore from a backup…” when it first opens, "
             "pick the backup folder and type these words.")
MATCH, MISMATCH = "color: #15803d", "color: #b91c1c"


def same_word(typed: str, word: str) -> bool:
    """People type words back in any case, with stray spaces: only the letters count."""
    return "".join(typed.split()).lower() == word.lower()


def _fixed_font() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


class RecoveryWords(QWidget):
    """The phrase in a numbered grid (fixed-width, selectable), what it is for, Print… and Copy."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._phrase = ""
        self.purpose = QLabel(PURPOSE)
        self.purpose.setWordWrap(True)
        self.cells = [QLabel() for _ in range(PHRASE_WORDS)]
        grid = QHBoxLayout()
        columns = [QVBoxLayout() for _ in range(COLUMNS)]
        rows = -(-PHRASE_WORDS // COLUMNS)
        for index, cell in enumerate(self.cells):
            cell.setFont(_fixed_font())
            cell.setTextFormat(Qt.TextFormat.PlainText)
            cell.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            cell.setAccessibleName(f"Word {index + 1}")
            columns[index // rows].addWidget(cell)  # down each column, the way people copy a list out
        for column in columns:
            grid.addLayout(column)
        self.print_button = QPushButton("Print…")
        self.print_button.clicked.connect(self.print_phrase)
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self.copy)
        self.note = QLabel()
        self.note.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.print_button)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.note, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.purpose)
        layout.addSpacing(6)
        layout.addLayout(grid)
        layout.addSpacing(6)
        layout.addLayout(buttons)
        self.clear()

    @property
    def phrase(self) -> str:
        return self._phrase

    def show_phrase(self, phrase: str) -> None:
        words = phrase.split()
        if len(words) != PHRASE_WORDS:  # never show part of a key as if it were all of it
            raise ValueError(f"A recovery key has {PHRASE_WORDS} words, not {len(words)}")
        self._phrase = " ".join(words)
        for number, (cell, word) in enumerate(zip(self.cells, words, strict=True), 1):
            cell.setText(f"{number:>2}. {word}")
        self.print_button.setEnabled(True)
        self.copy_button.setEnabled(True)

    def shown_words(self) -> list[str]:
        """The words as the grid shows them, in order (empty once cleared)."""
        return [cell.text().split(". ", 1)[1] for cell in self.cells if cell.text()]

    def printable(self) -> QTextDocument:
        """The page Print… sends: the numbered words, the date, and what they are for."""
        words = self._phrase.split()
        rows = -(-len(words) // COLUMNS)
        cells = [[f"<td><tt>{n + 1}. {html.escape(words[n])}</tt></td>"
                  for n in range(r, len(words), rows)] for r in range(rows)]
        table = "".join(f"<tr>{''.join(row)}</tr>" for row in cells)
        today = date.today()
        document = QTextDocument()
        document.setHtml(f"<h2>Vault recovery key</h2><p>Made on {today.day} {today:%B %Y}.</p>"
                         f"<table cellpadding='8'>{table}</table>"
                         f"<p>{html.escape(PURPOSE)}</p><p>{html.escape(RESTORING)}</p>")
        return document

    def print_phrase(self) -> None:
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        dialog = QPrintDialog(printer, self)
        dialog.setWindowTitle("Print the recovery key")
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.printable().print_(printer)
            self.note.setText("Sent to the printer.")

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self._phrase)
        self.note.setText("Copied. The clipboard is emptied when this closes.")

    def clear(self) -> None:
        clipboard = QGuiApplication.clipboard()
        if self._phrase and clipboard.text() == self._phrase:
            clipboard.clear()
        self._phrase = ""
        for cell in self.cells:
            cell.clear()
        self.note.clear()
        self.print_button.setEnabled(False)
        self.copy_button.setEnabled(False)


class RecoveryCheck(QWidget):
    """Three words of the phrase, chosen at random by position, typed back; `confirmed` once all match."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.positions: list[int] = []
        self._expected: list[str] = []
        intro = QLabel("To be sure you kept your recovery key, type these words from it.")
        intro.setWordWrap(True)
        self.labels = [QLabel() for _ in range(CHECKED_WORDS)]
        self.entries = [QLineEdit() for _ in range(CHECKED_WORDS)]
        self.status = QLabel()
        self.status.setWordWrap(True)
        form = QFormLayout()
        for label, entry in zip(self.labels, self.entries, strict=True):
            entry.setFont(_fixed_font())
            entry.textChanged.connect(self._update)
            form.addRow(label, entry)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def ask(self, phrase: str, positions: Sequence[int] | None = None) -> None:
        """Ask for three words of `phrase` (positions count from 1; random unless given)."""
        words = phrase.split()
        chosen = positions or random.SystemRandom().sample(range(1, len(words) + 1), CHECKED_WORDS)
        self.positions = sorted(chosen)
        self._expected = [words[p - 1] for p in self.positions]
        for label, entry, position in zip(self.labels, self.entries, self.positions, strict=True):
            label.setText(f"Word {position}")
            entry.setAccessibleName(f"Word {position}")
            entry.clear()
        self._update()

    @property
    def confirmed(self) -> bool:
        return bool(self._expected) and all(
            same_word(entry.text(), word) for entry, word in zip(self.entries, self._expected, strict=True))

    def clear(self) -> None:
        self.positions, self._expected = [], []
        for label, entry in zip(self.labels, self.entries, strict=True):
            label.clear()
            entry.clear()
        self._update()

    def _update(self) -> None:
        if self.confirmed:
            self.status.setText("✓ They match.")
            self.status.setStyleSheet(MATCH)
        elif self._expected and all(entry.text().strip() for entry in self.entries):
            answers = zip(self.positions, self.entries, self._expected, strict=True)
            wrong = [str(p) for p, entry, word in answers if not same_word(entry.text(), word)]
            which = (f"Word {wrong[0]} does not" if len(wrong) == 1
                     else f"Words {', '.join(wrong[:-1])} and {wrong[-1]} do not")
            self.status.setText(f"{which} match: check what you wrote down.")
            self.status.setStyleSheet(MISMATCH)
        else:
            self.status.clear()
        self.changed.emit()


class RecoveryKeyDialog(QDialog):
    """A new recovery key: its words first, then three of them typed back; Continue once they match."""

    def __init__(self, phrase: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Your new recovery key")
        self.words = RecoveryWords()
        self.words.show_phrase(phrase)
        self.check = RecoveryCheck()
        self.check.ask(phrase)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.words)
        self.stack.addWidget(self.check)
        self.back_button = QPushButton("Back")
        self.next_button = QPushButton("Next")
        self.continue_button = QPushButton("Continue")
        self.back_button.clicked.connect(lambda: self.show_step(0))
        self.next_button.clicked.connect(lambda: self.show_step(1))
        self.continue_button.clicked.connect(self.accept)
        self.check.changed.connect(self._update)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.back_button, self.next_button, self.continue_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.stack, 1)
        layout.addLayout(buttons)
        self.setMinimumWidth(560)
        self.show_step(0)

    def show_step(self, step: int) -> None:
        self.stack.setCurrentIndex(step)
        self.back_button.setVisible(step == 1)
        self.next_button.setVisible(step == 0)
        self.continue_button.setVisible(step == 1)
        self.next_button.setDefault(step == 0)
        self.continue_button.setDefault(step == 1)
        self._update()

    def accept(self) -> None:
        if self.check.confirmed:
            super().accept()

    def done(self, result: int) -> None:
        self.words.clear()
        self.check.clear()
        super().done(result)

    def _update(self) -> None:
        self.continue_button.setEnabled(self.check.confirmed)


class PhraseEntry(QWidget):
    """The whole recovery key typed in (any case, spaces or line breaks between words), checked as it is
    typed, in the service's own words: word count, unknown words, checksum. `phrase` is the key once it
    passes, else ""."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setFont(_fixed_font())
        self.text.setPlaceholderText(f"The {PHRASE_WORDS} words of your recovery key, in order")
        self.text.setAccessibleName("Recovery key")
        self.text.setTabChangesFocus(True)
        self.text.setFixedHeight(96)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Recovery key check")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addWidget(self.status)
        self._phrase = ""
        self.text.textChanged.connect(self._check)

    @property
    def phrase(self) -> str:
        return self._phrase

    def say(self, text: str, ok: bool) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(MATCH if ok else MISMATCH)

    def clear(self) -> None:
        self.text.clear()

    def _check(self) -> None:
        typed = self.text.toPlainText()
        try:
            self._phrase = check_phrase(typed) if typed.strip() else ""
        except VaultError as exc:
            self._phrase = ""
            self.say(exc.message, ok=False)
            if len(typed.split()) < PHRASE_WORDS:  # still being typed: not yet a mistake
                self.status.setStyleSheet("")
        else:
            self.status.clear()
        self.changed.emit()

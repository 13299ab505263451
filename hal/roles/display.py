"""The display role (optional): a short text shown to the driver at the station."""

from __future__ import annotations

import abc
import logging
from typing import Callable

from hal.roles._device import Device


log = logging.getLogger(__name__)


class Display(Device, abc.ABC):
    """A text display. ``show(None)`` blanks it; ``text`` is what is shown now.

    Drivers implement ``_render(text)``; the base keeps ``text`` so callers
    never have to read the hardware back.
    """

    def __init__(self) -> None:
        self._text: str | None = None
        self._listeners: list[Callable[[str | None], None]] = []

    @property
    def text(self) -> str | None:
        """The text shown now, or None when blank."""
        return self._text

    def show(self, text: str | None) -> None:
        """Show ``text`` (None blanks the display)."""
        if text is not None and not isinstance(text, str):
            raise TypeError(f"display text must be a string or None, not {type(text).__name__}")
        self._render(text)
        changed, self._text = text != self._text, text
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(text)
                except Exception:  # whoever follows the display must not break showing it
                    log.exception("display listener %r failed", listener)

    def add_listener(self, listener: Callable[[str | None], None]) -> None:
        """Call ``listener(text)`` after the text shown changed; it runs in ``show()``, so it must be quick."""
        self._listeners.append(listener)

    @abc.abstractmethod
    def _render(self, text: str | None) -> None:
        """Driver hook: put ``text`` on the display (None = blank)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} text={self._text!r}>"

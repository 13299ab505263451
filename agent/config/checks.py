"""The building blocks of config validation: located problems, choices read from data, "did you mean" hints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file, located by its dotted key path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes annotations, and a table is a dict
class OneOf:
    """Annotation metadata (``Annotated[str, OneOf(...)]``): the value must be one of ``choices``.

    ``choices`` is the table the HAL builds from (its keys are the names) or a
    function listing data files, called each time a file is checked: the config
    keeps no list of its own, so a driver or a register map is added in one place.
    """

    choices: Iterable[str] | Callable[[], Iterable[str]]

    def names(self) -> tuple[str, ...]:
        """The accepted names, in the order their source gives them."""
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not accepted (the choices, and the closest one), or None when it is."""
        names = self.names()
        if isinstance(value, str) and value in names:
            return None
        shown = ", ".join(repr(name) for name in names)
        hint = did_you_mean(value, list(names)) if isinstance(value, str) else ""
        return f"expected one of {shown}, got {value!r}{hint}"


def did_you_mean(key: str, candidates: list[str]) -> str:
    """' (did you mean "x"?)' for the candidate closest to ``key`` (or equal but for case), else ''."""
    import difflib  # only to suggest a fix for a mistake: the running daemon does not carry it

    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if key.lower() in lowered:
            close = [lowered[key.lower()]]
    return f' (did you mean "{close[0]}"?)' if close else ""

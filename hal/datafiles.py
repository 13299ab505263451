"""Device maps shipped as TOML data files (meters, EVSE controllers): one loader for all of them.

The files are the list of models: whatever ``<model>.toml`` a map directory
holds is a model the config accepts and the driver can load, so adding a
model is adding a file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from importlib.resources.abc import Traversable


def model_names(directory: Traversable) -> tuple[str, ...]:
    """The models that have a ``<model>.toml`` in ``directory``, sorted."""
    names = (entry.name for entry in directory.iterdir())
    return tuple(sorted(name[:-5] for name in names if name.endswith(".toml")))


def read_model_file(directory: Traversable, model: str, valid: Sequence[str], *, what: str,
                    unknown: type[Exception], malformed: type[Exception]) -> Mapping:
    """The parsed ``<model>.toml`` of ``directory``; ``unknown`` (naming the valid models) if there is none."""
    if not isinstance(model, str) or model not in valid:
        import difflib  # only to suggest a fix for a mistake: the running daemon does not carry it

        hint = difflib.get_close_matches(str(model), valid, n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise unknown(f"unknown {what} {model!r}{maybe}; valid: {', '.join(valid)}")
    text = directory.joinpath(f"{model}.toml").read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise malformed(f"{model}.toml: {exc}") from exc


def build_checked(data: Mapping, build: Callable[[Mapping, list[str]], object], *, source: str,
                  malformed: type[Exception]):
    """Run ``build(data, problems)``; raise ``malformed`` listing every problem (or a missing key)."""
    problems: list[str] = []
    try:
        result = build(data, problems)
    except KeyError as exc:
        problems.append(f"missing key {exc}")
        result = None
    except (TypeError, ValueError, AttributeError) as exc:
        problems.append(f"malformed: {exc}")
        result = None
    if problems or result is None:
        raise malformed(f"{source}: " + "; ".join(problems))
    return result


def check_model_name(loaded, model: str, *, malformed: type[Exception]):
    """The file of ``model`` must describe ``model`` (a copied file left unedited is caught here)."""
    if loaded.model != model:
        raise malformed(f"{model}.toml: model is {loaded.model!r}, not {model!r}")
    return loaded

"""Targets in both wire forms, and the object-privacy matching rule (pure, no ORM).

OpenADR 3.1 carries targets as plain strings; 3.0.1 carries them as valuesMaps
(``{"type": "GROUP", "values": ["g1"]}``). Internally a target is a (type, label)
pair and matching uses the label only, so that an object targeted through one version
is visible to a VEN granted the same label through the other. Strings from 3.1 get the
type ``TARGET``.
"""

from __future__ import annotations

from collections.abc import Iterable, Set

GENERIC_TYPE = "TARGET"

Targets = list[dict]  # [{"type": str, "values": [str, ...]}]


def from_strings(strings: Iterable[str] | None) -> Targets:
    """Internal form of 3.1 targets."""
    values = list(dict.fromkeys(strings or []))
    return [{"type": GENERIC_TYPE, "values": values}] if values else []


def from_values_maps(values_maps: Iterable[dict] | None) -> Targets:
    """Internal form of 3.0.1 targets; each value becomes a label, converted to text."""
    result: Targets = []
    for item in values_maps or []:
        values = [str(v) for v in item.get("values", []) if not isinstance(v, dict)]
        result.append({"type": str(item["type"]), "values": values})
    return result


def labels(targets: Targets | None) -> set[str]:
    """Every label named by the targets, whatever its type."""
    return {value for item in targets or [] for value in item.get("values", [])}


def to_strings(targets: Targets | None, visible: Set[str] | None = None) -> list[str] | None:
    """3.1 rendering; with ``visible``, labels outside it are hidden (target hiding)."""
    result = [label for label in _ordered_labels(targets) if visible is None or label in visible]
    return result or None


def to_values_maps(targets: Targets | None, visible: Set[str] | None = None) -> list[dict] | None:
    """3.0.1 rendering; with ``visible``, labels outside it are hidden (target hiding)."""
    result = []
    for item in targets or []:
        values = [v for v in item.get("values", []) if visible is None or v in visible]
        if values:
            result.append({"type": item["type"], "values": values})
    return result or None


def _ordered_labels(targets: Targets | None) -> list[str]:
    return list(dict.fromkeys(v for item in targets or [] for v in item.get("values", [])))


def effective_labels(granted: set[str], requested: set[str] | None) -> set[str]:
    """Labels a VEN may match with: its granted labels, narrowed to those it asked for.

    ``requested`` is None when the request named no targets, in which case every
    granted label applies.
    """
    if requested is None:
        return set(granted)
    return granted & requested


def is_visible(object_labels: set[str], effective: set[str]) -> bool:
    """An object without targets is open to every VEN; otherwise one label must match."""
    return not object_labels or bool(object_labels & effective)

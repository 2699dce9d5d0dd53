"""What a model is, beside its weights: the ``model.json`` card.

A :class:`ModelCard` records the architecture, the classes the network predicts (id, name,
colour), how raw pixels are scaled before they reach the network, the training data and
parameters, metrics per epoch, the model it was fine-tuned from, and when it was made. Legacy
checkpoints from the old stack have no card; :func:`default_card` fills in sensible defaults.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from biosegment.errors import InputError

__all__ = ["ModelCard", "DEFAULT_NORMALISATION", "default_classes", "default_card", "CARD_VERSION"]

#: Format version written into every ``model.json``.
CARD_VERSION = 1

#: Pixels scaled to [0, 1] by their dtype's range (uint8 / 255), as the old stack trained.
DEFAULT_NORMALISATION = {"method": "dtype_range", "range": [0.0, 1.0]}

# Distinct colours for class overlays; background is transparent-looking black.
_PALETTE = (
    "#000000",
    "#00c0ff",
    "#ff4040",
    "#40ff40",
    "#ffd000",
    "#c040ff",
    "#ff8000",
    "#00ffc0",
    "#ff60c0",
    "#8080ff",
)


def default_classes(num_classes: int) -> list[dict]:
    """Classes for a model that names none: 0 ``background``, then ``class 1`` .. ``class N``."""
    classes = []
    for class_id in range(num_classes):
        name = "background" if class_id == 0 else f"class {class_id}"
        classes.append({"id": class_id, "name": name, "color": _PALETTE[class_id % len(_PALETTE)]})
    return classes


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class ModelCard:
    """The contents of ``model.json``. Every field has a default so legacy models get a card."""

    name: str = ""
    architecture: dict = field(default_factory=dict)
    classes: list[dict] = field(default_factory=list)
    normalisation: dict = field(default_factory=lambda: dict(DEFAULT_NORMALISATION))
    training: dict = field(default_factory=dict)  #: {"data": ..., "params": ...}
    metrics: list[dict] = field(default_factory=list)  #: one dict per epoch
    parent: str | None = None  #: location of the base model, if any
    created: str = field(default_factory=_now)  #: ISO 8601, UTC
    #: The pixel size the model expects: ``{"in_plane_nm": [low, high], ...}``; empty = unknown.
    pixel_size: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The card as plain data.

        :returns: every field, plus ``version`` (the card format), ready for JSON.
        """
        data = asdict(self)
        data["version"] = CARD_VERSION
        return data

    def to_json(self) -> str:
        """The card as the text of a ``model.json`` file.

        :returns: indented JSON ending with a newline.
        """
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict, *, source: object | None = None) -> ModelCard:
        """Build a card from a parsed ``model.json``; unknown keys are ignored.

        :raises InputError: naming ``source`` and the key when a field has the wrong type.
        """
        if not isinstance(data, dict):
            raise InputError("model card must be a JSON object", source=source)
        expected: dict[str, type | tuple[type, ...]] = {
            "name": str,
            "architecture": dict,
            "classes": list,
            "normalisation": dict,
            "training": dict,
            "metrics": list,
            "parent": (str, type(None)),
            "created": str,
            "pixel_size": dict,
        }
        values = {}
        for key, kind in expected.items():
            if key not in data:
                continue
            if not isinstance(data[key], kind):
                raise InputError(
                    f"expected {_kind_name(kind)}, got {type(data[key]).__name__}",
                    source=source,
                    where=key,
                )
            values[key] = data[key]
        for index, entry in enumerate(values.get("classes", [])):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
                raise InputError(
                    "each class needs an integer 'id'", source=source, where=f"classes[{index}]"
                )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, *, source: object | None = None) -> ModelCard:
        """Parse ``model.json`` text; bad JSON raises :class:`InputError` with the line."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"invalid JSON: {exc.msg}",
                source=source,
                where=f"line {exc.lineno}, column {exc.colno}",
            ) from None
        except RecursionError:  # thousands of nested brackets exhaust the parser's stack
            raise InputError("invalid JSON: nested too deeply", source=source) from None
        return cls.from_dict(data, source=source)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def default_card(name: str, architecture: dict) -> ModelCard:
    """A card for a model that came without one (a bare legacy ``.pytorch`` file)."""
    return ModelCard(
        name=name,
        architecture=dict(architecture),
        classes=default_classes(architecture.get("num_classes", 2)),
    )

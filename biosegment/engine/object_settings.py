"""Which classes of a segmentation become objects, and how: the choices a person makes.

A segment job counts objects of the classes its request names (``objects``: names or ids,
comma separated, or ``none``) or, when the request says nothing, of the classes its project
marks ``"objects": true`` in ``setup.json``. :func:`object_classes` turns either into class ids
of the model, with an input error naming the field for a class the model does not have.
Importing this module imports neither torch nor scipy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from biosegment.errors import InputError

__all__ = ["OBJECT_SPLITS", "ObjectRequest", "object_classes"]

#: How touching objects are split: not at all, or by a watershed seeded from the distance
#: transform or from the class probability.
OBJECT_SPLITS = ("none", "distance", "probability")


@dataclass(frozen=True, slots=True)
class ObjectRequest:
    """The objects a segment job makes: of which classes, split how, from which size on."""

    class_ids: tuple[int, ...]
    split: str = "none"
    min_voxels: int = 0
    min_nm3: int = 0


def object_classes(
    requested: str | None,
    model_classes: Sequence[Mapping],
    project_classes: Sequence[Mapping] = (),
) -> tuple[int, ...]:
    """Class ids whose objects are counted; empty for none.

    :param requested: the request's ``objects`` (None: the project's marked classes).
    :param model_classes: the model's ``{"id", "name"}`` classes (what the labels hold).
    :param project_classes: the project's classes as setup.json declares them.
    :raises InputError: (``where="objects"``) for a name or id the model does not have, or the
        background.
    """
    by_name = {str(c.get("name", "")).strip().lower(): int(c["id"]) for c in model_classes}
    known = {int(c["id"]) for c in model_classes}
    if requested is None:
        marked = [int(c["id"]) for c in project_classes if c.get("objects") is True]
        return tuple(i for i in marked if i in known and i != 0)
    words = [w.strip() for w in requested.split(",") if w.strip()]
    if [w.lower() for w in words] in ([], ["none"]):
        return ()
    chosen: list[int] = []
    for word in words:
        if word.isdigit():
            class_id = int(word)
        elif word.lower() in by_name:
            class_id = by_name[word.lower()]
        else:
            names = ", ".join(str(c.get("name", c["id"])) for c in model_classes if c["id"] != 0)
            raise InputError(f"the model has no class {word!r}; it has {names}", where="objects")
        if class_id == 0 or class_id not in known:
            raise InputError(
                f"class {class_id} is not one of the model's object classes", where="objects"
            )
        if class_id not in chosen:
            chosen.append(class_id)
    return tuple(chosen)

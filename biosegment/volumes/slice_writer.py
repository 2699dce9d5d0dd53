"""What every volume writer shares: slices in order, then commit into place or abort.

A writer streams a (z, y, x) volume one slice (or block of slices) at a time into a temporary
output beside its destination. :class:`SliceWriter` keeps the rules that do not depend on the
format: slices come in order and fit the volume (see :mod:`biosegment.volumes.pixels`), a
commit with slices missing discards the output instead, nothing is accepted after commit or
abort, and as a context manager a writer commits when the block ends normally and aborts when
it raises. Each format supplies how a plane is stored, finished and thrown away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biosegment.volumes.pixels import checked_shape, coerce_plane, writable_dtype

__all__ = ["SliceWriter"]


class SliceWriter:
    """Base of the atomic writers; subclasses implement the four hooks at the end."""

    #: What the output is called in the error for a commit with slices missing.
    output_kind = "file"

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: str):
        self.path = Path(path)
        self.shape = checked_shape(shape)
        self.dtype = writable_dtype(dtype, self.path)
        self._next_z = 0

    @property
    def slices_written(self) -> int:
        return self._next_z

    def write_slice(self, z: int, array: np.ndarray) -> None:
        """Write slice ``z``; slices must come in order 0, 1, ..., shape[0] - 1."""
        if self.finished:
            raise ValueError(f"{self.path}: writer already committed or aborted")
        if z != self._next_z:
            raise ValueError(
                f"{self.path}: slices must be written in order; expected slice "
                f"{self._next_z}, got {z}"
            )
        if z >= self.shape[0]:
            raise ValueError(f"{self.path}: slice {z} outside the volume's {self.shape[0]} slices")
        self._write_plane(z, coerce_plane(array, self.shape[1:], self.dtype, self.path))
        self._next_z += 1

    def write_block(self, z0: int, block: np.ndarray) -> None:
        """Write ``block`` (z, y, x) as slices ``z0 .. z0 + len(block) - 1``."""
        block = np.asarray(block)
        if block.ndim != 3:
            raise ValueError(f"{self.path}: a block must be 3-D (z, y, x), got shape {block.shape}")
        for offset, plane in enumerate(block):
            self.write_slice(z0 + offset, plane)

    def commit(self) -> Path:
        """Finish the output and move it into place; missing slices abort instead."""
        if self.finished:
            raise ValueError(f"{self.path}: writer already committed or aborted")
        if self._next_z != self.shape[0]:
            self.abort()
            raise ValueError(
                f"{self.path}: only {self._next_z} of {self.shape[0]} slices were "
                f"written; the incomplete {self.output_kind} was discarded"
            )
        return self._complete()

    def abort(self) -> None:
        """Discard everything written so far; ``path`` keeps its previous content."""
        if self.finished:
            return
        self._throw_away()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.finished:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # -- what each format supplies ---------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once committed or aborted."""
        raise NotImplementedError

    def _write_plane(self, z: int, plane: np.ndarray) -> None:
        """Store slice ``z`` (already checked and of the volume's dtype); abort on failure."""
        raise NotImplementedError

    def _complete(self) -> Path:
        """Finish the output and rename it over ``path``; abort on failure."""
        raise NotImplementedError

    def _throw_away(self) -> None:
        """Remove the temporary output and mark the writer finished."""
        raise NotImplementedError

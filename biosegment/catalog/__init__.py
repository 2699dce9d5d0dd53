"""The catalog: the index of the data folder, kept in ``<root>/.biosegment/catalog.db``.

It lists the datasets, models, segmentations, annotations and projects the folder holds (from
``setup.json`` and from the folder itself), the jobs run on them, and the problems found on the
way. :func:`refresh` is the one call that brings it in line with the folder; :func:`reindex`
rebuilds it from the folder alone. See SPEC sections 2, 3, 4 and 6.
"""

from __future__ import annotations

from biosegment.catalog.reconcile import reconcile_setup
from biosegment.catalog.refresh import refresh, reindex
from biosegment.catalog.scan import scan_data_folder
from biosegment.catalog.setup_file import SetupDocument, load_setup
from biosegment.catalog.store import Catalog, open_catalog

__all__ = [
    "Catalog",
    "SetupDocument",
    "open_catalog",
    "load_setup",
    "reconcile_setup",
    "scan_data_folder",
    "refresh",
    "reindex",
]

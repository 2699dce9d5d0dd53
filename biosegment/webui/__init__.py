"""BioSegment's web interface: the Flask application, its JSON API and the pages of the UI.

``create_app(config)`` builds the application (pages, ``/api/v1`` and ``/docs``) for one data
folder; :mod:`biosegment.webui.server` serves it with waitress for the daemon. The UI only reads
the catalog and the data folder and asks the job service for work; it never opens the queue.
"""

from __future__ import annotations

from biosegment.webui.app import create_app

__all__ = ["create_app"]

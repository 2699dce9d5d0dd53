"""Run a data folder's daemon as a system service: systemd, launchd or Windows Task Scheduler.

The templates live in ``packaging/`` (``systemd/``, ``launchd/``, ``windows/``).
:func:`plan_service` fills the right one for a config, platform and scope (system-wide, or the
user's own service manager with ``user_scope``); :func:`install_service`,
:func:`uninstall_service` and :func:`service_status` write, remove and inspect it and talk to
the service manager. ``biosegment service install|uninstall|status [--user]`` is the CLI.
"""

from __future__ import annotations

from biosegment.system_service.manager import (
    ServicePlan,
    ServiceReport,
    install_service,
    plan_service,
    service_status,
    uninstall_service,
)
from biosegment.system_service.platforms import PLATFORMS, current_platform_key
from biosegment.system_service.spec import DEFAULT_SERVICE_NAME, ServiceSpec, build_service_spec

__all__ = [
    "ServicePlan",
    "ServiceReport",
    "ServiceSpec",
    "PLATFORMS",
    "DEFAULT_SERVICE_NAME",
    "build_service_spec",
    "plan_service",
    "install_service",
    "uninstall_service",
    "service_status",
    "current_platform_key",
]

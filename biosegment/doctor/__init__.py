"""``biosegment doctor``: find what is broken in a data folder's state and rebuild it.

:func:`run_doctor` examines, in order, who is using the folder, its layout, the catalog
(``catalog.db``), the job queue (``queue.db``), the accounts (``accounts.db``) and
``secrets.toml``, and with ``repair`` rebuilds what is missing or damaged: the catalog from a
folder scan plus whatever rows the damaged file still yields, the queue from the catalog's
jobs, the accounts from what the damaged file still yields. Damaged files are kept beside
the new ones, never deleted. While a daemon or worker uses the folder (which is fine) it only
reports. What the folder holds that cannot be read (a truncated TIFF, a mistake in
``setup.json``) is listed by name: that is the person's to fix, never the doctor's.
"""

from __future__ import annotations

from biosegment.config import Config
from biosegment.doctor.accounts_check import check_accounts, check_secrets
from biosegment.doctor.catalog_check import check_catalog
from biosegment.doctor.data_check import check_data
from biosegment.doctor.folder_checks import check_daemon, check_layout, folder_users
from biosegment.doctor.queue_check import check_queue
from biosegment.doctor.report import DoctorReport, Finding
from biosegment.errors import NotFoundError

__all__ = ["run_doctor", "DoctorReport", "Finding"]


def run_doctor(config: Config, *, repair: bool = True) -> DoctorReport:
    """Check (and with ``repair``, fix) the state of ``config.data_dir``."""
    root = config.data_dir
    if not root.is_dir():
        raise NotFoundError(f"data folder {root} does not exist; create it with biosegment init")
    report = DoctorReport(data_dir=str(root), repair=repair)
    users = folder_users(root)
    report.findings.append(check_daemon(users))
    repair = repair and not users  # a repair under a running daemon would race its writes
    report.findings.append(check_layout(root, repair=repair))
    catalog = check_catalog(root, repair=repair)
    report.findings.append(catalog)
    report.findings.append(
        check_data(
            root,
            catalog_usable=catalog.state in ("ok", "repaired"),
            refresh_first=repair,
            forget_after=config.watch.forget_after_seconds,
        )
    )
    # The queue is refilled from the catalog: it is checked once the catalog is whole again.
    report.findings.append(check_queue(config, repair=repair))
    report.findings.append(check_accounts(config, repair=repair))
    report.findings.append(check_secrets(config, repair=repair))
    return report

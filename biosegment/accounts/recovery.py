"""Put back what a damaged ``accounts.db`` still held, into a fresh one.

People, their password hashes, their API tokens and the audit log are copied row by row from
whatever :func:`biosegment.doctor.sqlite_files.salvage_rows` could read; sessions are not (every
browser logs in again, which is the safe side). Rows are inserted with their original ids, so
tokens keep working and the audit log keeps its order.
"""

from __future__ import annotations

from pathlib import Path

from biosegment.accounts.store import open_accounts

__all__ = ["restore_accounts", "RESTORED_TABLES"]

#: In dependency order: tokens refer to users.
RESTORED_TABLES = ("users", "api_tokens", "audit")


def restore_accounts(root: Path, salvaged: dict[str, list[dict]]) -> dict[str, int]:
    """Create a new accounts database in ``root`` and insert the salvaged rows; counts back."""
    counts = {}
    with open_accounts(root) as accounts:
        with accounts._write() as conn:
            for table in RESTORED_TABLES:
                columns = [info[1] for info in conn.execute(f"PRAGMA table_info({table})")]
                inserted = 0
                for row in salvaged.get(table, []):
                    wanted = [c for c in columns if c in row]
                    try:
                        inserted += conn.execute(
                            f"INSERT OR IGNORE INTO {table} ({', '.join(wanted)}) "
                            f"VALUES ({', '.join('?' for _ in wanted)})",
                            [row[c] for c in wanted],
                        ).rowcount
                    except Exception:
                        continue  # a row damaged beyond its constraints is left behind
                counts[table] = inserted
        counts["admins"] = sum(1 for u in accounts.users() if u["role"] == "admin")
    return counts

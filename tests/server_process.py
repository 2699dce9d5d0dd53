"""The real web app served by waitress in a child process, for tests that must watch or kill it.

Tests of stalls and memory need the server apart from the test: a read that spins must not
burn the test runner's CPU after the test, and the memory a request costs is the server
process's resident set (read from ``/proc/<pid>/status``), not the runner's. The child loads a
real ``biosegment.toml`` (so ``[limits]`` come from the file, as in the daemon), binds a free
port on 127.0.0.1 and prints its URL; :class:`child_server` yields that URL and the pid, and
kills the child on exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["child_server", "rss_bytes", "peak_rss_bytes"]

_CHILD = """
import dataclasses, sys
from biosegment.config import load_config
from biosegment.webui.server import create_server
config = load_config(sys.argv[1])
config = dataclasses.replace(config, server=dataclasses.replace(config.server, port=0))
server = create_server(config)
print(server.url, flush=True)
server.serve_forever()
"""


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


def rss_bytes(pid: int) -> int:
    """The resident set of a process now."""
    return _status_field(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int:
    """The largest resident set the process has had (the kernel's high-water mark)."""
    return _status_field(pid, "VmHWM")


class child_server:
    """Context manager: ``(url, pid)`` of the app for ``root`` served in a child process."""

    def __init__(self, root: Path, *, limits: str = "", tmp: Path):
        self.config = Path(tmp) / "biosegment.toml"
        self.errors = Path(tmp) / "server-stderr.txt"
        self.config.write_text(
            f'data_dir = "{Path(root).as_posix()}"\n\n[server]\n'
            f'host = "127.0.0.1"\n\n[limits]\n{limits}\n',
            encoding="utf-8",
        )

    def __enter__(self) -> tuple[str, int]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BIOSEGMENT")}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(self.config)],
            stdout=subprocess.PIPE,
            stderr=self.errors.open("w"),
            text=True,
            env=env,
        )
        url = self.proc.stdout.readline().strip()
        if not url.startswith("http"):
            self.proc.kill()
            raise RuntimeError(
                f"the server did not start (exit {self.proc.wait()}): "
                + self.errors.read_text()[-2000:]
            )
        return url, self.proc.pid

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait(10)

"""BioSegment imports, and its CLI answers ``--help``, without the modules only POSIX has.

Windows has no ``fcntl``, ``pwd``, ``grp``, ``termios``, ``resource`` or ``posix``. A BioSegment
module that imports one of them at import time breaks the whole package there. Each check runs
in a fresh interpreter whose import system refuses those modules to BioSegment's own code (a
meta-path finder), as Windows would. Imports made by the standard library and other packages
are left alone: they choose per platform themselves (``shutil`` imports ``posix`` only on
POSIX). So a module that needs one of them must import it lazily, inside the function that
uses it, or guarded by ``try``/``except ImportError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSIX_ONLY = ("fcntl", "pwd", "grp", "termios", "resource", "posix")

# Installed before anything of BioSegment is imported. An import statement in a biosegment
# module that names a blocked module first drops any cached copy from sys.modules (so the finder
# is asked even when another library imported it already), and the finder then refuses it.
BLOCKER = textwrap.dedent(f"""
    import builtins, sys
    BLOCKED = set({POSIX_ONLY!r})
    REFUSED = []

    def _importer(depth):
        frame = sys._getframe(depth)
        while frame is not None and (frame.f_code is _import.__code__ or frame.f_globals.get(
                "__name__", "").startswith(("importlib", "_frozen_importlib"))):
            frame = frame.f_back
        return frame.f_globals.get("__name__", "") if frame is not None else ""

    def _ours(name):
        return name == "biosegment" or name.startswith("biosegment.")

    class RefusePosixOnly:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED and _ours(_importer(2)):
                REFUSED.append((name, _importer(2)))
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: POSIX only)",
                                          name=name)
            return None

    sys.meta_path.insert(0, RefusePosixOnly())
    _real_import = builtins.__import__

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        top = name.partition(".")[0]
        if level == 0 and top in BLOCKED and globals and _ours(globals.get("__name__", "")):
            saved = sys.modules.pop(top, None)
            try:
                return _real_import(name, globals, locals, fromlist, level)
            finally:
                if saved is not None:
                    sys.modules.setdefault(top, saved)
        return _real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = _import
""")


def run_blocked(body: str, *args: str) -> subprocess.CompletedProcess:
    script = BLOCKER + textwrap.dedent(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOSEGMENT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_blocker_refuses_posix_only_imports_in_biosegment_code(tmp_path):
    # A throwaway module inside the package namespace stands for an offending BioSegment module.
    package = tmp_path / "biosegment_probe"
    package.mkdir()
    (package / "__init__.py").write_text("import fcntl\n", encoding="utf-8")
    result = run_blocked(
        """
        import importlib, sys
        import fcntl                                        # allowed: not BioSegment's code
        sys.path.insert(0, sys.argv[1])
        import biosegment
        fake = type(sys)("biosegment.offender")
        fake.__file__ = "<offender>"
        try:
            exec("import fcntl", fake.__dict__)             # refused: imported by biosegment.*
        except ModuleNotFoundError as exc:
            print("refused", exc.name)
        exec("try:\\n    import pwd\\nexcept ImportError:\\n    pwd = None", fake.__dict__)
        print("guarded", fake.pwd)
        import shutil                                       # the standard library is left alone
        print("stdlib ok")
    """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "refused fcntl" in result.stdout
    assert "guarded None" in result.stdout
    assert "stdlib ok" in result.stdout


def test_every_module_imports_without_posix_only_modules():
    result = run_blocked("""
        import importlib, pkgutil
        import biosegment
        failures = []
        for info in pkgutil.walk_packages(biosegment.__path__, "biosegment."):
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                failures.append(f"{info.name}: {exc}")
        print("imported", len(list(pkgutil.walk_packages(biosegment.__path__, "biosegment."))))
        print("refused", sorted(set(REFUSED)))
        for failure in failures:
            print("FAIL", failure)
    """)
    assert result.returncode == 0, result.stderr
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert not failures, "\n".join(failures)
    count = int(
        next(line for line in result.stdout.splitlines() if line.startswith("imported")).split()[1]
    )
    assert count > 50, result.stdout


def test_the_cli_help_runs_without_posix_only_modules():
    result = run_blocked("""
        import sys
        from biosegment.cli import main
        for args in (["--help"], ["run", "--help"], ["service", "install", "--help"],
                     ["segment", "--help"], ["doctor", "--help"]):
            try:
                main(args, prog_name="biosegment", standalone_mode=False)
            except SystemExit as exc:
                if exc.code:
                    raise
        print("refused", sorted(set(REFUSED)))
    """)
    assert result.returncode == 0, result.stderr
    assert "Usage: biosegment [OPTIONS] COMMAND" in result.stdout
    assert "Usage: biosegment service install" in result.stdout

"""Service definitions: systemd units that `systemd-analyze verify` accepts without a warning,
launchd property lists and Windows tasks that parse and say the right thing, and
`biosegment service install|uninstall|status` that never loses a definition someone wrote.

Nothing here talks to a running service manager (tests must not register real services):
definitions are written with --no-start or --dry-run and checked as files.
"""

from __future__ import annotations

import json
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from biosegment.config import load_config
from biosegment.datafolder import init_data_folder
from biosegment.system_service import install_service, plan_service

TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
# Characters systemd and XML treat specially, in the name of the data folder.
AWKWARD_NAME = "lab data 100% $HOME <a&b>"


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip(
            "systemd-analyze not installed (Debian package systemd; `make test` installs it)"
        )
    return path


def biosegment(*args: str, env_extra: dict | None = None, check: bool = True):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BIOSEGMENT_CONFIG", "BIOSEGMENT_DATA", "ROOT_DATA_FOLDER")
    }
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-m", "biosegment", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"biosegment {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def verify(unit: Path, *, user: bool = False, runtime_dir: Path | None = None):
    command = [systemd_analyze(), *(["--user"] if user else []), "verify", str(unit)]
    env = dict(os.environ)
    if runtime_dir is not None:
        env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def directive(unit_text: str, key: str) -> str:
    values = [
        line.split("=", 1)[1] for line in unit_text.splitlines() if line.startswith(key + "=")
    ]
    assert len(values) == 1, f"{key}= appears {len(values)} times"
    return values[0]


def unescape_systemd(word: str) -> str:
    return word.replace("%%", "%").replace("$$", "$")


@pytest.fixture
def data_folder(tmp_path) -> Path:
    root = tmp_path / AWKWARD_NAME
    init_data_folder(root)
    return root


@pytest.fixture
def config(data_folder):
    return load_config(data_folder / "biosegment.toml", env={})


@pytest.fixture
def awkward_python(tmp_path) -> Path:
    """The interpreter reached through a folder whose name needs quoting in a unit."""
    folder = tmp_path / "python env 50%"
    folder.mkdir()
    link = folder / "python3"
    link.symlink_to(sys.executable)
    return link


def test_the_verifier_reports_a_broken_unit(tmp_path):
    """The check below is only worth something if systemd-analyze speaks up about problems."""
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nExecStart=/nonexistent/python -m biosegment\nNoSuchKey=1\n")
    result = verify(unit)
    assert result.returncode != 0 or (result.stdout + result.stderr).strip()
    assert "NoSuchKey" in result.stdout + result.stderr


def test_system_unit_is_verified_without_warnings(tmp_path, config, data_folder, awkward_python):
    plan = plan_service(
        config,
        user_scope=False,
        target_dir=tmp_path / "units",
        python=awkward_python,
        platform="linux",
    )
    report = install_service(plan, start=False)
    assert report.action == "written" and plan.path.name == "biosegment.service"
    result = verify(plan.path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""
    text = plan.path.read_text()
    owner = data_folder.stat().st_uid
    import pwd

    assert directive(text, "User") == pwd.getpwuid(owner).pw_name
    assert unescape_systemd(directive(text, "WorkingDirectory")) == str(data_folder)
    argv = [unescape_systemd(word) for word in shlex.split(directive(text, "ExecStart"))]
    assert argv == [
        str(awkward_python),
        "-m",
        "biosegment",
        "--config",
        str(data_folder / "biosegment.toml"),
        "--data",
        str(data_folder),
        "run",
        "--headless",
    ]
    assert directive(text, "Restart") == "on-failure"
    assert directive(text, "StandardOutput") == "journal"
    assert directive(text, "WantedBy") == "multi-user.target"
    assert oct(plan.path.stat().st_mode & 0o777) == "0o644"


def test_user_unit_from_the_cli_is_verified_without_warnings(tmp_path, data_folder):
    xdg = tmp_path / "xdg"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    proc = biosegment(
        "--config",
        str(data_folder / "biosegment.toml"),
        "service",
        "install",
        "--user",
        "--no-start",
        "--json",
        env_extra={"XDG_CONFIG_HOME": str(xdg)},
    )
    report = json.loads(proc.stdout)
    unit = xdg / "systemd" / "user" / "biosegment.service"
    assert report["definition"] == str(unit) and report["commands"] == []
    text = unit.read_text()
    assert "User=" not in text and directive(text, "WantedBy") == "default.target"
    result = verify(unit, user=True, runtime_dir=runtime)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_launchd_daemon_and_agent_parse_as_property_lists(tmp_path, config, data_folder):
    for user_scope in (False, True):
        plan = plan_service(
            config,
            user_scope=user_scope,
            platform="macos",
            target_dir=tmp_path / f"launchd-{user_scope}",
        )
        install_service(plan, start=False)
        document = plistlib.loads(plan.path.read_bytes())
        assert document["Label"] == "org.biosegment.biosegment"
        assert document["ProgramArguments"][-4:] == [
            "--data",
            str(data_folder),
            "run",
            "--headless",
        ]
        assert document["WorkingDirectory"] == str(data_folder)
        assert document["KeepAlive"] == {"SuccessfulExit": False}
        assert document["StandardErrorPath"] == str(data_folder / ".biosegment" / "service.log")
        assert ("UserName" in document) is (not user_scope)


def test_windows_tasks_start_at_boot_or_logon_and_restart_after_failure(tmp_path, data_folder):
    for user_scope, trigger in ((False, "BootTrigger"), (True, "LogonTrigger")):
        args = [
            "--config",
            str(data_folder / "biosegment.toml"),
            "service",
            "install",
            "--platform",
            "windows",
            "--no-start",
            "--json",
            "--name",
            f"lab-{trigger}",
            "--unit-dir",
            str(tmp_path / "tasks"),
        ]
        args += ["--user"] if user_scope else ["--run-as", "LAB\\imaging"]
        report = json.loads(biosegment(*args).stdout)
        raw = Path(report["definition"]).read_bytes()
        assert raw[:2] in (b"\xff\xfe", b"\xfe\xff"), "Task Scheduler reads UTF-16 definitions"
        task = ET.fromstring(raw.decode("utf-16").split("\n", 1)[1])
        assert task.find(f"t:Triggers/t:{trigger}", TASK_NS) is not None
        assert task.findtext("t:Settings/t:RestartOnFailure/t:Count", namespaces=TASK_NS) == "999"
        assert task.findtext("t:Settings/t:ExecutionTimeLimit", namespaces=TASK_NS) == "PT0S"
        exec_ = task.find("t:Actions/t:Exec", TASK_NS)
        assert exec_.findtext("t:Command", namespaces=TASK_NS) == sys.executable
        assert f'--data "{data_folder}"' in exec_.findtext("t:Arguments", namespaces=TASK_NS)
        assert exec_.findtext("t:WorkingDirectory", namespaces=TASK_NS) == str(data_folder)
        user = task.findtext("t:Principals/t:Principal/t:UserId", namespaces=TASK_NS)
        if not user_scope:
            assert user == "LAB\\imaging"


def test_install_keeps_a_definition_someone_else_wrote(tmp_path, data_folder):
    units = tmp_path / "units"
    units.mkdir()
    theirs = units / "biosegment.service"
    theirs.write_text("[Service]\nExecStart=/usr/bin/true\n")
    config_args = ["--config", str(data_folder / "biosegment.toml"), "service"]
    refused = biosegment(
        *config_args, "install", "--unit-dir", str(units), "--no-start", check=False
    )
    assert refused.returncode == 1
    assert str(theirs) in refused.stderr and "--force" in refused.stderr
    assert theirs.read_text() == "[Service]\nExecStart=/usr/bin/true\n"

    forced = biosegment(
        *config_args, "install", "--unit-dir", str(units), "--no-start", "--force", "--json"
    )
    report = json.loads(forced.stdout)
    assert Path(report["previous"]).read_text() == "[Service]\nExecStart=/usr/bin/true\n"
    assert "run --headless" in theirs.read_text()

    again = json.loads(
        biosegment(*config_args, "install", "--unit-dir", str(units), "--no-start", "--json").stdout
    )
    assert again["action"] == "unchanged"


def test_status_and_uninstall_follow_the_definition_file(tmp_path, data_folder):
    config_args = ["--config", str(data_folder / "biosegment.toml"), "service"]
    where = ["--unit-dir", str(tmp_path / "units")]

    def status() -> dict:
        # The service manager is not asked here: the query may fail, the file facts may not.
        return json.loads(biosegment(*config_args, "status", *where, "--json").stdout)

    assert status()["installed"] is False
    biosegment(*config_args, "install", *where, "--no-start")
    assert status()["installed"] is True and status()["current"] is True
    unit = tmp_path / "units" / "biosegment.service"
    unit.write_text(unit.read_text().replace("RestartSec=10", "RestartSec=99"))
    assert status()["current"] is False
    removed = json.loads(
        biosegment(*config_args, "uninstall", *where, "--no-stop", "--json").stdout
    )
    assert removed["action"] == "removed" and not unit.exists()
    assert (data_folder / "setup.json").is_file()
    assert status()["installed"] is False


def test_dry_run_prints_the_definition_and_commands_and_writes_nothing(tmp_path, data_folder):
    proc = biosegment(
        "--config",
        str(data_folder / "biosegment.toml"),
        "service",
        "install",
        "--user",
        "--dry-run",
        "--unit-dir",
        str(tmp_path / "units"),
    )
    assert "ExecStart=" in proc.stdout
    assert "# then: systemctl --user enable --now biosegment.service" in proc.stdout
    assert not (tmp_path / "units").exists()


def test_bad_service_names_are_refused(data_folder):
    proc = biosegment(
        "--config",
        str(data_folder / "biosegment.toml"),
        "service",
        "install",
        "--dry-run",
        "--name",
        "../etc/passwd",
        check=False,
    )
    assert proc.returncode == 1 and "--name" in proc.stderr

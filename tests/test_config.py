"""biosegment.toml: lookup order, overrides, validation with the key named, the shipped default."""

from __future__ import annotations

from pathlib import Path

import pytest

from biosegment.config import CONFIG_FILE_NAME, load_config
from biosegment.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_default_config_loads_with_documented_defaults(tmp_path):
    config = load_config(REPO / CONFIG_FILE_NAME, env={})
    assert config.data_dir == (REPO / "data").resolve()
    assert config.server.host == "127.0.0.1"
    assert config.queue.url == ""
    assert config.engine.device == "auto"
    assert config.automation.auto_segment is False


def test_lookup_order_explicit_then_env_then_cwd_then_user(tmp_path):
    explicit = write(tmp_path / "a" / CONFIG_FILE_NAME, 'data_dir = "from-explicit"\n')
    env_file = write(tmp_path / "b" / CONFIG_FILE_NAME, 'data_dir = "from-env"\n')
    cwd = tmp_path / "c"
    write(cwd / CONFIG_FILE_NAME, 'data_dir = "from-cwd"\n')
    xdg = tmp_path / "xdg"
    write(xdg / "biosegment" / CONFIG_FILE_NAME, 'data_dir = "from-user"\n')
    env = {"BIOSEGMENT_CONFIG": str(env_file), "XDG_CONFIG_HOME": str(xdg)}

    assert load_config(explicit, env=env, cwd=cwd).data_dir.name == "from-explicit"
    assert load_config(None, env=env, cwd=cwd).data_dir.name == "from-env"
    del env["BIOSEGMENT_CONFIG"]
    assert load_config(None, env=env, cwd=cwd).data_dir.name == "from-cwd"
    import sys

    if sys.platform.startswith("linux"):
        assert load_config(None, env=env, cwd=tmp_path).data_dir.name == "from-user"


def test_relative_data_dir_is_relative_to_the_config_file(tmp_path):
    path = write(tmp_path / "conf" / CONFIG_FILE_NAME, 'data_dir = "../lab data"\n')
    assert load_config(path, env={}).data_dir == (tmp_path / "lab data").resolve()


def test_environment_overrides_data_dir_in_documented_order(tmp_path):
    path = write(tmp_path / CONFIG_FILE_NAME, 'data_dir = "file"\n')
    old = {"ROOT_DATA_FOLDER": str(tmp_path / "old")}
    assert load_config(path, env=old).data_dir == (tmp_path / "old").resolve()
    both = {**old, "BIOSEGMENT_DATA": str(tmp_path / "new")}
    assert load_config(path, env=both).data_dir == (tmp_path / "new").resolve()
    cli = load_config(path, env=both, data_dir=tmp_path / "cli")
    assert cli.data_dir == (tmp_path / "cli").resolve()


@pytest.mark.parametrize(
    "text, where",
    [
        ('data_dir = "x"\n[server]\nprot = 80\n', "server.prot"),
        ('data_dir = "x"\n[server]\nport = "80"\n', "server.port"),
        ('data_dir = "x"\n[server]\nport = 70000\n', "server.port"),
        ('data_dir = "x"\n[queue]\nurl = "amqp://x"\n', "queue.url"),
        ('data_dir = "x"\n[engine]\ndevice = "tpu"\n', "engine.device"),
        ('data_dir = "x"\n[watch]\npoll = "yes"\n', "watch.poll"),
        ('datadir = "x"\n', "datadir"),
        ("data_dir = 3\n", "data_dir"),
    ],
)
def test_invalid_values_name_the_file_and_key(tmp_path, text, where):
    path = write(tmp_path / CONFIG_FILE_NAME, text)
    with pytest.raises(InputError) as err:
        load_config(path, env={})
    assert err.value.where == where
    assert str(path.resolve()) in str(err.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path / CONFIG_FILE_NAME, "data_dir = \n")
    with pytest.raises(InputError, match="invalid TOML") as err:
        load_config(path, env={})
    assert CONFIG_FILE_NAME in str(err.value)


def test_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_ints_widen_to_floats(tmp_path):
    path = write(tmp_path / CONFIG_FILE_NAME, 'data_dir = "d"\n[watch]\nsettle_seconds = 2\n')
    assert load_config(path, env={}).watch.settle_seconds == 2.0


def test_queue_name_is_validated(tmp_path):
    good = write(tmp_path / "a" / CONFIG_FILE_NAME, 'data_dir = "d"\n[queue]\nname = "lab-2.em"\n')
    assert load_config(good, env={}).queue.name == "lab-2.em"
    bad = write(tmp_path / "b" / CONFIG_FILE_NAME, 'data_dir = "d"\n[queue]\nname = "a b"\n')
    with pytest.raises(InputError) as err:
        load_config(bad, env={})
    assert err.value.where == "queue.name"


def test_a_host_with_a_stray_space_is_a_clear_config_error(tmp_path):
    from biosegment.errors import InputError

    path = tmp_path / "biosegment.toml"
    path.write_text('[server]\nhost = "127.0.0.1 "\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_config(path, env={}, cwd=tmp_path)
    assert caught.value.where == "server.host" and "spaces" in caught.value.reason
    assert str(path) in str(caught.value)


def test_limits_are_read_and_checked(tmp_path):
    from biosegment.errors import InputError

    path = tmp_path / "biosegment.toml"
    path.write_text("[limits]\nmax_voxels = 1_000\nread_seconds = 2.5\n", encoding="utf-8")
    config = load_config(path, env={}, cwd=tmp_path)
    assert config.limits.max_voxels == 1000 and config.limits.read_seconds == 2.5
    path.write_text("[limits]\nheavy_reads = 0\n", encoding="utf-8")
    with pytest.raises(InputError, match="limits.heavy_reads"):
        load_config(path, env={}, cwd=tmp_path)
    path.write_text("[limits]\nmax_decode_mb = 0\n", encoding="utf-8")
    with pytest.raises(InputError, match="limits.max_decode_mb"):
        load_config(path, env={}, cwd=tmp_path)
    path.write_text("[limits]\nmax_decode_mb = 64\n", encoding="utf-8")
    assert load_config(path, env={}, cwd=tmp_path).limits.max_decode_mb == 64

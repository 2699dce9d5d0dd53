"""`models export` and `models import` never lose what a person has: an output folder keeps
its files, an existing model is replaced only on request (and then kept in the trash), and a
package cannot make an import read files outside it or unpack more than a bound."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from click.testing import CliRunner

import biosegment.engine.bioimageio  # noqa: F401  (torch and the importer load before tracing)
from biosegment.catalog import open_catalog
from biosegment.cli import main
from biosegment.engine import load_model, save_model
from biosegment.engine.bioimageio_package import MAX_WEIGHTS_BYTES

DEMO_MODEL = Path(__file__).resolve().parents[1] / "biosegment" / "demo" / "model"


def invoke(root, *args):
    return CliRunner().invoke(main, ["--data", str(root), *args], catch_exceptions=False)


def file_digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def data_folder(tmp_path, neuralnets_fixtures):
    """A data folder whose model `tiny` is a trained model folder: weights, a card with its
    training record, and TensorBoard logs."""
    root = tmp_path / "data"
    (root / "EM").mkdir(parents=True)
    model, card = load_model(neuralnets_fixtures / "unet2d_fm8_l3_batch.pytorch")
    card.name = "tiny"
    card.training = {"datasets": ["EPFL"], "epochs": 12, "note": "three days of annotation"}
    save_model(model, card, root / "models" / "tiny")
    logs = root / "models" / "tiny" / "logs"
    logs.mkdir()
    (logs / "events.out.tfevents.1").write_bytes(b"training curves")
    return root


@pytest.fixture(scope="module")
def package(neuralnets_fixtures, tmp_path_factory):
    """A bioimage.io package of another model, written by `models export`."""
    root = tmp_path_factory.mktemp("source-data")
    (root / "models").mkdir()
    shutil.copy(
        neuralnets_fixtures / "unet2d_fm8_l3_batch.pytorch", root / "models" / "other.pytorch"
    )
    path = tmp_path_factory.mktemp("zoo") / "other.bioimageio.zip"
    result = invoke(root, "models", "export", "other", "--format", "bioimageio", "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


# -- export: the output place ----------------------------------------------------------------


def test_bioimageio_export_into_an_existing_folder_keeps_everything_in_it(data_folder, tmp_path):
    kept = tmp_path / "my-exports"
    (kept / "older").mkdir(parents=True)
    (kept / "notes.txt").write_text("results for the paper")
    (kept / "older" / "model-v1.onnx").write_bytes(b"an older export")
    before = file_digests(kept)
    result = invoke(
        data_folder, "models", "export", "tiny", "--format", "bioimageio", "-o", str(kept)
    )
    assert result.exit_code == 0, result.output
    after = file_digests(kept)
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {"tiny.bioimageio.zip"}
    with zipfile.ZipFile(kept / "tiny.bioimageio.zip") as archive:
        assert "rdf.yaml" in archive.namelist()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_new_path_becomes_a_package_folder_and_is_never_replaced(data_folder, tmp_path):
    folder = tmp_path / "tiny-package"
    result = invoke(
        data_folder, "models", "export", "tiny", "--format", "bioimageio", "-o", str(folder)
    )
    assert result.exit_code == 0, result.output
    assert (folder / "rdf.yaml").is_file() and (folder / "weights.pt").is_file()
    (folder / "my-notes.md").write_text("checked in napari")
    before = file_digests(folder)
    again = invoke(
        data_folder, "models", "export", "tiny", "--format", "bioimageio", "-o", str(folder)
    )
    # The folder now exists: the package goes inside it, next to what is there.
    assert again.exit_code == 0, again.output
    after = file_digests(folder)
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {"tiny.bioimageio.zip"}


@pytest.mark.parametrize(
    ("export_format", "file_name"),
    [("onnx", "tiny.onnx"), ("torchscript", "tiny.torchscript.pt")],
)
def test_an_existing_folder_or_dot_gets_the_default_file_name(
    data_folder, tmp_path, monkeypatch, export_format, file_name
):
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(
        data_folder, "models", "export", "tiny", "--format", export_format, "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert (out / file_name).stat().st_size > 10_000
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = invoke(data_folder, "models", "export", "tiny", "--format", export_format, "-o", ".")
    assert result.exit_code == 0, result.output
    assert (here / file_name).stat().st_size > 10_000
    if export_format == "torchscript":
        torch.jit.load(str(here / file_name))
    else:
        onnx.checker.check_model(onnx.load(str(here / file_name)))


def test_an_existing_file_is_replaced_only_with_overwrite(data_folder, tmp_path):
    target = tmp_path / "tiny.onnx"
    target.write_bytes(b"a file someone keeps")
    refused = invoke(data_folder, "models", "export", "tiny", "--format", "onnx", "-o", str(target))
    assert refused.exit_code == 1
    assert str(target) in refused.output and "--overwrite" in refused.output
    assert target.read_bytes() == b"a file someone keeps"
    replaced = invoke(
        data_folder,
        "models",
        "export",
        "tiny",
        "--format",
        "onnx",
        "-o",
        str(target),
        "--overwrite",
    )
    assert replaced.exit_code == 0, replaced.output
    onnx.checker.check_model(onnx.load(str(target)))


def test_help_and_output_say_how_the_model_scales_its_input(data_folder, tmp_path):
    help_text = " ".join(invoke(data_folder, "models", "export", "--help").output.split())
    assert "percentile" in help_text and "255" in help_text
    # The demo model scales between percentiles; the exported network leaves it to the caller.
    demo = invoke(
        data_folder,
        "models",
        "export",
        str(DEMO_MODEL),
        "--format",
        "onnx",
        "-o",
        str(tmp_path / "demo.onnx"),
        "--json",
    )
    assert demo.exit_code == 0, demo.output
    scaling = json.loads(demo.output)["input_scaling"]
    assert "percentile 1 maps to 0" in scaling and "percentile 99 to 1" in scaling
    assert "255" not in scaling
    graph = onnx.load(str(tmp_path / "demo.onnx"))
    assert "percentile 99 to 1" in graph.doc_string
    tiny = invoke(
        data_folder, "models", "export", "tiny", "--format", "onnx", "-o", str(tmp_path / "t.onnx")
    )
    assert tiny.exit_code == 0 and "uint8 by 255" in tiny.output


# -- import: an existing model ---------------------------------------------------------------


def test_import_refuses_a_name_that_is_taken_and_changes_nothing(data_folder, package):
    before = file_digests(data_folder / "models")
    result = invoke(data_folder, "models", "import", str(package), "--name", "tiny")
    assert result.exit_code == 1
    assert "model 'tiny' already exists" in result.output
    assert "--name" in result.output and "--replace" in result.output
    assert file_digests(data_folder / "models") == before
    card = json.loads((data_folder / "models" / "tiny" / "model.json").read_text())
    assert card["training"]["note"] == "three days of annotation"


def test_import_refuses_a_name_a_train_job_holds(data_folder, package):
    with open_catalog(data_folder) as catalog:
        job = catalog.create_job("train", {"output_name": "fresh"}, model_name="fresh")
    result = invoke(data_folder, "models", "import", str(package), "--name", "fresh", "--replace")
    assert result.exit_code == 1
    assert "'fresh' is held by a train job" in result.output
    assert not (data_folder / "models" / "fresh").exists()
    with open_catalog(data_folder) as catalog:
        assert catalog.job(job["id"])["model_name"] == "fresh"


def test_import_refuses_the_name_of_an_older_single_file_model(data_folder, package):
    legacy = data_folder / "models" / "legacy.pytorch"
    shutil.copy(data_folder / "models" / "tiny" / "model.pytorch", legacy)
    result = invoke(data_folder, "models", "import", str(package), "--name", "legacy")
    assert result.exit_code == 1 and "model 'legacy' already exists" in result.output
    assert "models/legacy.pytorch" in result.output
    assert not (data_folder / "models" / "legacy").exists()


def test_replace_moves_the_old_model_to_the_trash_whole(data_folder, package):
    old = file_digests(data_folder / "models" / "tiny")
    result = invoke(
        data_folder, "models", "import", str(package), "--name", "tiny", "--replace", "--json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["model"] == "tiny"
    trash = data_folder / document["replaced_into"]
    assert trash.parent == data_folder / ".biosegment-trash"
    assert file_digests(trash / "models" / "tiny") == old
    note = json.loads((trash / "trashed.json").read_text())
    assert note["moved"] == ["models/tiny"] and "import" in note["why"]
    # The new model stands alone: its card, no logs of the old training.
    assert sorted(p.name for p in (data_folder / "models" / "tiny").iterdir()) == [
        "model.json",
        "model.pytorch",
    ]
    card = json.loads((data_folder / "models" / "tiny" / "model.json").read_text())
    assert card["training"]["imported_from"] == str(package)
    listed = json.loads(invoke(data_folder, "models", "--json").output)
    assert [m["name"] for m in listed] == ["tiny"]


# -- import: what a package may make BioSegment read ---------------------------------------


def unpack(package: Path, folder: Path) -> Path:
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    return folder


def edit_rdf(folder: Path, edit) -> None:
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    edit(rdf)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))


def test_a_test_tensor_outside_the_folder_package_is_refused(data_folder, package, tmp_path):
    folder = unpack(package, tmp_path / "pkg" / "inner")
    # A file two levels up that is exactly the package's test input: read, it would pass.
    outside = tmp_path / "x.npy"
    shutil.copy(folder / "test_input.npy", outside)
    edit_rdf(folder, lambda rdf: rdf["inputs"][0]["test_tensor"].update(source="../../x.npy"))
    result = invoke(data_folder, "models", "import", str(folder), "--name", "escaped")
    assert result.exit_code == 1
    assert "inputs[0].test_tensor" in result.output and "../../x.npy" in result.output
    assert not (data_folder / "models" / "escaped").exists()


def test_a_link_out_of_the_folder_package_is_refused(data_folder, package, tmp_path):
    folder = unpack(package, tmp_path / "pkg")
    outside = tmp_path / "elsewhere.npy"
    shutil.move(folder / "test_output.npy", outside)
    (folder / "test_output.npy").symlink_to(outside)
    result = invoke(data_folder, "models", "import", str(folder), "--name", "linked")
    assert result.exit_code == 1
    assert "outputs[0].test_tensor" in result.output and "outside the package" in result.output
    assert not (data_folder / "models" / "linked").exists()


def zeros_member_zip(
    path: Path, rdf_text: str, member: str, size: int, *, declared: int | None = None
) -> Path:
    """A zip holding ``rdf.yaml`` and ``member``: ``size`` zero bytes deflated to a few
    hundred kilobytes. The deflate stream repeats one flushed 1 MiB block, so building it
    costs no compression time; the CRC is the real one. ``declared``: the size the headers
    claim instead of ``size``."""
    declared = size if declared is None else declared
    block = 2**20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    ending = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    stream = piece * (size // block) + ending
    crc, zeros = 0, bytes(block)
    for _ in range(size // block):
        crc = zlib.crc32(zeros, crc)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rdf.yaml", rdf_text)
    # Append the member by hand: a local header, the stream, then a rewritten directory.
    with zipfile.ZipFile(path) as archive:
        first = archive.infolist()[0]
        directory_at = archive.start_dir
    data = path.read_bytes()[:directory_at]
    name = member.encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(stream), declared, len(name), 0
    )
    member_at = len(data)
    data += local + name + stream
    directory = b""
    for entry, offset, method, csize, usize, entry_crc in (
        (
            first.filename.encode(),
            first.header_offset,
            0,
            first.compress_size,
            first.file_size,
            first.CRC,
        ),
        (name, member_at, 8, len(stream), declared, crc),
    ):
        directory += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                entry_crc,
                csize,
                usize,
                len(entry),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + entry
        )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 2, 2, len(directory), len(data), 0)
    path.write_bytes(data + directory + end)
    return path


def test_a_member_that_unpacks_past_the_bound_is_refused_unread(data_folder, package, tmp_path):
    size = 2 * MAX_WEIGHTS_BYTES  # 512 MiB of weights, 0.5 MB in the zip
    with zipfile.ZipFile(package) as archive:
        rdf_text = archive.read("rdf.yaml").decode()
    rdf = yaml.safe_load(rdf_text)
    rdf["weights"]["pytorch_state_dict"].pop("sha256")
    bomb = zeros_member_zip(tmp_path / "bomb.zip", yaml.safe_dump(rdf), "weights.pt", size)
    assert bomb.stat().st_size < 2 * 2**20
    with zipfile.ZipFile(bomb) as archive:  # a well-formed archive: the sizes are honest
        assert archive.getinfo("weights.pt").file_size == size
        with archive.open("weights.pt") as stream:
            assert stream.read(4096) == bytes(4096)
    tracemalloc.start()
    try:
        result = invoke(data_folder, "models", "import", str(bomb), "--name", "bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "weights.pytorch_state_dict" in message and "weights.pt declares 512.0 MiB" in message
    assert "256.0 MiB" in message
    assert peak < 16 * 2**20, f"the refused import still allocated {peak / 2**20:.0f} MiB"
    assert not (data_folder / "models" / "bomb").exists()


def test_an_oversized_file_in_a_folder_package_is_refused_unread(data_folder, package, tmp_path):
    folder = unpack(package, tmp_path / "pkg")
    edit_rdf(folder, lambda rdf: rdf["weights"]["pytorch_state_dict"].pop("sha256"))
    with open(folder / "weights.pt", "r+b") as handle:  # sparse: no disk space taken
        handle.truncate(MAX_WEIGHTS_BYTES + 1)
    tracemalloc.start()
    try:
        result = invoke(data_folder, "models", "import", str(folder), "--name", "huge")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 1 and "weights.pt holds 256.0 MiB" in result.output
    assert peak < 16 * 2**20


def test_a_test_input_too_large_to_run_is_refused_with_what_fits(data_folder, package, tmp_path):
    folder = unpack(package, tmp_path / "pkg")
    big = np.zeros((1, 1, 4096, 4096), np.uint8)  # 16 MiB: within the file bound
    np.save(folder / "test_input.npy", big)
    digest = hashlib.sha256((folder / "test_input.npy").read_bytes()).hexdigest()
    edit_rdf(folder, lambda rdf: rdf["inputs"][0]["test_tensor"].update(sha256=digest))
    result = invoke(data_folder, "models", "import", str(folder), "--name", "big-test")
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "inputs[0].test_tensor" in message and "[1, 1, 4096, 4096]" in message
    assert "voxels fits" in message
    assert not os.path.exists(data_folder / "models" / "big-test")


def test_a_member_whose_header_understates_its_size_is_refused(data_folder, package, tmp_path):
    with zipfile.ZipFile(package) as archive:
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
    rdf["weights"]["pytorch_state_dict"].pop("sha256")
    liar = zeros_member_zip(
        tmp_path / "liar.zip",
        yaml.safe_dump(rdf),
        "weights.pt",
        2 * MAX_WEIGHTS_BYTES,
        declared=4096,
    )
    tracemalloc.start()
    try:
        result = invoke(data_folder, "models", "import", str(liar), "--name", "liar")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "weights.pytorch_state_dict: weights.pt cannot be unpacked" in message
    assert "sizes are false" in message
    assert peak < 16 * 2**20
    assert not (data_folder / "models" / "liar").exists()

"""Benchmark: objects and their table for a 1 GiB class volume, against writing the labels.

Builds a uint8 class volume of ``--gib`` GiB (planes of ``--size`` x ``--size``) as a raw file:
random ellipsoids (radii 2-8 planes in z, 4-20 pixels in y and x, as mitochondria look in
anisotropic EM), about 6 % of the voxels, half of them class 1 and half class 2, many
touching or crossing each other and every slab border. Then, each in a fresh process so that
its peak resident memory (``VmHWM``) is its own:

1. **write**: the step a segmentation job ends with, writing the class volume as
   ``labels.tif`` with :class:`~biosegment.volumes.LabelVolumeWriter` (zlib, slab by slab);
2. **objects**: :func:`~biosegment.engine.instances.label_instances` for both classes into a
   uint32 raw file, then :func:`~biosegment.engine.object_table.measure_objects` on it (mean
   intensity read from the class volume, which stands in for the image) and the CSV.

Both read their input through short-lived memory maps, one box at a time, so resident memory
shows what the code holds and not the page cache of a mapped file.

Target (issue 25): objects + table in at most 1.5x the writing step's time; peak RSS bounded by
the slab size, not the volume.

    python benchmarks/bench_objects.py [--gib 1.0] [--size 1024] [--block-planes 16]
        [--scratch DIR] [--json out.json]

Use ``--gib 0.06`` for a quick run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "make_classes"]

TARGET_RATIO = 1.5
VOXEL_SIZE = (30.0, 8.0, 8.0)
DENSITY = 0.06


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _ellipsoids(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Rows of (z, y, x, rz, ry, rx, class) filling about DENSITY of the volume."""
    rng = np.random.default_rng(seed)
    radii_mean = 5.0 * 12.0 * 12.0 * 4 / 3 * np.pi
    count = max(1, int(DENSITY * np.prod(shape) / radii_mean))
    centres = rng.uniform(0, shape, size=(count, 3))
    radii = np.stack(
        [rng.uniform(2, 8, count), rng.uniform(4, 20, count), rng.uniform(4, 20, count)], axis=1
    )
    classes = rng.integers(1, 3, count)
    return np.concatenate([centres, radii, classes[:, None]], axis=1)


def make_classes(path: Path, shape: tuple[int, int, int], planes: int = 64) -> int:
    """Write the ellipsoid class volume as raw uint8 planes; returns the ellipsoid count."""
    shapes = _ellipsoids(shape)
    with open(path, "wb") as handle:
        for z0 in range(0, shape[0], planes):
            z1 = min(shape[0], z0 + planes)
            slab = np.zeros((z1 - z0, shape[1], shape[2]), np.uint8)
            near = shapes[(shapes[:, 0] + shapes[:, 3] >= z0) & (shapes[:, 0] - shapes[:, 3] < z1)]
            for cz, cy, cx, rz, ry, rx, kind in near:
                lo = np.maximum(np.floor([cz - rz, cy - ry, cx - rx]).astype(int), [z0, 0, 0])
                hi = np.minimum(
                    np.ceil([cz + rz, cy + ry, cx + rx]).astype(int) + 1, [z1, *shape[1:]]
                )
                if np.any(hi <= lo):
                    continue
                z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
                inside = ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
                box = slab[lo[0] - z0 : hi[0] - z0, lo[1] : hi[1], lo[2] : hi[2]]
                box[inside] = int(kind)
            handle.write(slab.tobytes())
    return len(shapes)


class _Clock:
    """Seconds spent in reads and writes, to tell I/O from computing."""

    def __init__(self) -> None:
        self.reading = 0.0
        self.writing = 0.0


def _file_source(path: Path, shape: tuple[int, int, int], dtype: str, name: str, clock: _Clock):
    from biosegment.engine.volume_blocks import BlockSource

    def read(z: slice, y: slice, x: slice) -> np.ndarray:
        start = time.perf_counter()
        mapped = np.memmap(path, dtype=dtype, mode="r", shape=shape)
        box = np.array(mapped[z, y, x])
        del mapped  # unmapped: only the copy stays resident
        clock.reading += time.perf_counter() - start
        return box

    return BlockSource(read, shape, name)


def _phase_write(scratch: Path, shape: tuple[int, int, int], planes: int) -> dict:
    from biosegment.volumes import LabelVolumeWriter

    clock = _Clock()
    classes = _file_source(scratch / "classes.raw", shape, "uint8", "classes", clock)
    before = _status_kib("VmHWM")
    start = time.perf_counter()
    with LabelVolumeWriter(
        scratch / "labels.tif", shape, dtype="uint8", voxel_size=VOXEL_SIZE
    ) as writer:
        for z0 in range(0, shape[0], planes):
            writer.write_block(z0, classes.planes(z0, min(shape[0], z0 + planes)))
    return {
        "seconds": time.perf_counter() - start,
        "reading_seconds": clock.reading,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
        "rss_before_mib": before / 1024,
        "file_bytes": (scratch / "labels.tif").stat().st_size,
    }


def _phase_objects(scratch: Path, shape: tuple[int, int, int], planes: int) -> dict:
    from biosegment.engine.instances import label_instances
    from biosegment.engine.object_table import measure_objects, write_object_table

    clock = _Clock()
    classes = _file_source(scratch / "classes.raw", shape, "uint8", "classes", clock)
    ids_path = scratch / "instances.raw"
    plane_bytes = shape[1] * shape[2] * 4
    with open(ids_path, "wb") as handle:
        handle.truncate(shape[0] * plane_bytes)
    before = _status_kib("VmHWM")
    start = time.perf_counter()
    with open(ids_path, "r+b") as handle:

        def write(z0: int, block: np.ndarray) -> None:
            begin = time.perf_counter()
            handle.seek(z0 * plane_bytes)
            handle.write(block.tobytes())
            clock.writing += time.perf_counter() - begin

        found = label_instances(classes, write, class_ids=(1, 2), block_planes=planes)
    labelled = time.perf_counter()
    instance_io = clock.reading + clock.writing
    ids = _file_source(ids_path, shape, "uint32", "labels", clock)
    table = measure_objects(
        ids,
        class_of_id=found.class_of_id,
        intensity=classes,
        voxel_size=VOXEL_SIZE,
        block_planes=planes,
    )
    measured = time.perf_counter()
    write_object_table(table, scratch / "objects.csv", replace=True)
    done = time.perf_counter()
    return {
        "seconds": done - start,
        "instances_seconds": labelled - start,
        "instances_io_seconds": instance_io,
        "table_seconds": measured - labelled,
        "table_reading_seconds": clock.reading + clock.writing - instance_io,
        "csv_seconds": done - measured,
        "objects": found.objects,
        "objects_per_class": found.count,
        "peak_rss_mib": _status_kib("VmHWM") / 1024,
        "rss_before_mib": before / 1024,
    }


def _child(phase: str, scratch: Path, shape: tuple[int, int, int], planes: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--scratch",
        str(scratch),
        "--shape",
        ",".join(map(str, shape)),
        "--block-planes",
        str(planes),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="class volume size in GiB")
    parser.add_argument("--size", type=int, default=1024, help="plane height and width")
    parser.add_argument("--block-planes", type=int, default=16, help="z planes per slab")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the files")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--phase", choices=["write", "objects"], help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        shape = tuple(int(n) for n in args.shape.split(","))
        run = _phase_write if args.phase == "write" else _phase_objects
        print(json.dumps(run(args.scratch, shape, args.block_planes)))
        return

    depth = max(1, int(args.gib * 2**30 // (args.size * args.size)))
    shape = (depth, args.size, args.size)
    scratch = Path(tempfile.mkdtemp(prefix="biosegment-objects-", dir=args.scratch))
    try:
        start = time.perf_counter()
        ellipsoids = make_classes(scratch / "classes.raw", shape)
        made = time.perf_counter() - start
        write = _child("write", scratch, shape, args.block_planes)
        objects = _child("objects", scratch, shape, args.block_planes)
        figures = {
            "shape": list(shape),
            "volume_gib": depth * args.size**2 / 2**30,
            "block_planes": args.block_planes,
            "slab_mib": args.block_planes * args.size**2 / 2**20,
            "ellipsoids": ellipsoids,
            "generate_seconds": made,
            "write": write,
            "objects": objects,
            "ratio": objects["seconds"] / write["seconds"],
            "target_ratio": TARGET_RATIO,
            "load_average": os.getloadavg(),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    print(
        f"{shape} uint8 ({figures['volume_gib']:.2f} GiB), {objects['objects']} objects: "
        f"writing labels.tif {write['seconds']:.1f} s (peak RSS {write['peak_rss_mib']:.0f} MiB); "
        f"objects {objects['instances_seconds']:.1f} s (I/O {objects['instances_io_seconds']:.1f} s) "
        f"+ table {objects['table_seconds']:.1f} s (reading {objects['table_reading_seconds']:.1f} s) "
        f"+ CSV {objects['csv_seconds']:.1f} s = {objects['seconds']:.1f} s "
        f"(peak RSS {objects['peak_rss_mib']:.0f} MiB): {figures['ratio']:.2f}x the writing "
        f"(target {TARGET_RATIO}x)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

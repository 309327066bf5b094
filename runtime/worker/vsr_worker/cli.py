"""``vsr-worker``: the worker's command line.

    vsr-worker split   --manifest URI            (a Batch job)
    vsr-worker upscale --manifest URI [--index]  (a Batch array child: AWS_BATCH_JOB_ARRAY_INDEX;
                                                  --index 0,2,4: several segments, one model load)
    vsr-worker merge   --manifest URI            (a Batch job)
    vsr-worker run INPUT -o OUTPUT ...           (the whole graph on this machine)
    vsr-worker probe INPUT                       (what the worker sees in a file, as JSON)
    vsr-worker models                            (the models available)

Every failure prints one line, ``vsr-worker: error [code]: message``, and exits with the
code's exit status (vsr_client.contract.ERROR_EXIT_CODES): 64-66 for bad input, which Batch
never retries. Under Batch an internal failure on a job's first attempt exits 75 instead, to
be tried once more (vsr_client.retry_matrix).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

from vsr_client.codes import DEFAULT_DEVICE, DEFAULT_MODEL, DEFAULT_SEGMENT_TIME, ErrorCode, ExitCode
from vsr_client.devices import DEVICES

PROG = "vsr-worker"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, usage exit code
        self.exit(int(ExitCode.USAGE), f"{PROG}: error [{ErrorCode.INVALID_ARGUMENT.value}]: {message}\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Video super-resolution worker.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for name, help_text in (
        ("split", "cut the source into segments (stream copy)"),
        ("upscale", "upscale one segment (array child)"),
        ("merge", "join the upscaled segments with the source's other streams"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--manifest", required=True, help="URI of the job manifest (JSON)")
        if name == "upscale":
            p.add_argument(
                "--index",
                default=None,
                metavar="I[,J...]",
                help="segment index, or several upscaled one after the other by this process "
                "(default: $AWS_BATCH_JOB_ARRAY_INDEX, else 0)",
            )

    run = sub.add_parser("run", help="upscale a video on this machine (split, upscale in parallel, merge)")
    run.add_argument("input", help="source video")
    run.add_argument("-o", "--output", required=True, help="output file (.mp4, .mov or .mkv)")
    run.add_argument("--scale", type=int, default=2, help="upscale factor per side: 2 or 4 (default 2)")
    run.add_argument(
        "--segment-time",
        type=_positive_float,
        default=DEFAULT_SEGMENT_TIME,
        help=f"seconds per parallel segment (default {DEFAULT_SEGMENT_TIME:g})",
    )
    run.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL}); see 'models'")
    run.add_argument(
        "--device",
        choices=DEVICES,
        default=DEFAULT_DEVICE,
        help="inference backend (default auto: the fastest this machine has; $VSR_DEVICE overrides)",
    )
    run.add_argument(
        "--tile", type=int, default=None, help="input pixels per tile side, 0 for whole frames (default per device)"
    )
    run.add_argument("-j", "--jobs", type=int, default=None, help="parallel upscale processes (default: cores)")
    run.add_argument("--work-dir", default=None, help="keep intermediates here (default: a temp dir beside the output)")
    run.add_argument("--keep-work", action="store_true", help="keep intermediates after success")
    run.add_argument(
        "--task", choices=("inference", "debug"), default="inference", help="'debug' keeps every intermediate"
    )
    run.add_argument("-y", "--overwrite", action="store_true", help="replace an existing output")
    run.add_argument("--codec", choices=("libx264", "libx265"), default="libx264", help="video encoder")
    run.add_argument("--crf", type=int, default=18, help="encoder quality, lower is better (default 18)")
    run.add_argument("--preset", default="medium", help="encoder preset (default medium)")
    run.add_argument(
        "--bit-depth",
        choices=("source", "8", "10"),
        default="source",
        help="output bit depth; 'source' keeps 10-bit input 10-bit (default)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    pr = sub.add_parser("probe", help="print what the worker sees in a video, as JSON")
    pr.add_argument("input")
    mo = sub.add_parser("models", help="list the available models; --convert prepares their weights")
    mo.add_argument("--convert", action="store_true", help="convert the bundled ncnn weights into the model cache")
    mo.add_argument("--force", action="store_true", help="with --convert: convert again even if cached")
    mo.add_argument(
        "--compile",
        metavar="DEVICE",
        choices=("neuron", "neuronx", "jit"),
        help="compile every learned model for DEVICE at its fixed tile shape into the cache (image build)",
    )
    mo.add_argument("--json", action="store_true", help="print the registry as JSON")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from vsr_worker.engine.local_run import main_run

        return main_run(args)
    if args.command == "probe":
        from vsr_worker.media.probe import probe

        print(json.dumps(probe(Path(args.input)).to_json(), indent=2))
        return 0
    if args.command == "models":
        from vsr_worker.models.registry import LEARNED, MODELS, convert_all

        if args.convert or args.compile:
            for name, path in convert_all(force=args.force).items():
                print(f"{name}\t{path}")
        if args.compile:
            from vsr_worker.backends import DEFAULTS, make_backend

            for name in LEARNED:
                for scale in MODELS[name].scales:
                    backend = make_backend(name, scale, args.compile, DEFAULTS[args.compile])
                    print(f"{name} x{scale}\t{backend.path}")
        if args.json:
            print(json.dumps([info.to_json() for info in MODELS.values()], indent=2))
        elif not (args.convert or args.compile):
            for info in MODELS.values():
                print(f"{info.name}\t{info.architecture}\tx{'/x'.join(map(str, info.scales))}\t{info.licence}")
        return 0

    from vsr_worker.stages.common import array_indices, load_manifest

    manifest = load_manifest(args.manifest)
    if args.command == "upscale":
        from vsr_worker.stages.upscale import run_upscale

        for index in array_indices(args.index):
            with _stage_log(manifest, "upscale", index), _failure_record(manifest, "upscale", index):
                run_upscale(manifest, index)
        return 0
    with _stage_log(manifest, args.command, 0), _failure_record(manifest, args.command, 0):
        if args.command == "split":
            from vsr_worker.stages.split import run_split

            run_split(manifest)
        elif args.command == "merge":
            from vsr_worker.stages.merge import run_merge

            print(json.dumps(run_merge(manifest)))
    return 0


@contextlib.contextmanager
def _failure_record(manifest, stage: str, index: int) -> Iterator[None]:
    """A stage's error (code and one-line message) also goes into its progress record."""
    try:
        yield
    except Exception as exc:
        from vsr_worker.errors import classify
        from vsr_worker.progress import record_failure

        error = classify(exc)
        try:
            record_failure(manifest.work, stage, index, error.code.value, " ".join(error.message.split()))
        except Exception:  # the record is a courtesy: never hide the stage's own error
            logging.getLogger(__name__).warning("could not store the failure record", exc_info=True)
        raise


@contextlib.contextmanager
def _stage_log(manifest, stage: str, index: int) -> Iterator[None]:
    """task=debug: the stage's log and timing also go to <work>/debug/logs/ (success or not)."""
    if manifest.task != "debug":
        yield
        return
    from vsr_worker import layout, storage

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    started = time.perf_counter()
    outcome = "failed"
    try:
        yield
        outcome = "succeeded"
    finally:
        logging.getLogger().removeHandler(handler)
        buffer.write(f"{stage}[{index}] {outcome} in {time.perf_counter() - started:.3f}s\n")
        try:
            storage.write_bytes(
                layout.debug(manifest.work, f"logs/{stage}_{index:05d}.log"), buffer.getvalue().encode()
            )
        except Exception as exc:  # the log is a courtesy: never hide the stage's own outcome
            logging.getLogger(__name__).warning("could not store the debug log: %s", exc)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from vsr_client.retry_matrix import batch_attempt, exit_status
        from vsr_worker.errors import classify

        error = classify(exc, _written_dirs(args))
        if error.code == ErrorCode.INTERNAL:
            logging.getLogger(PROG).debug("internal error", exc_info=exc)  # the traceback with -v
        print(f"{PROG}: error [{error.code.value}]: {' '.join(error.message.split())}", file=sys.stderr)
        return exit_status(error.code, batch_attempt())


def _written_dirs(args: argparse.Namespace) -> list:
    """Where this command writes: named when a full disk does not say which file it hit."""
    dirs = []
    for uri in (getattr(args, "manifest", None), getattr(args, "output", None)):
        if uri and "://" not in uri:
            dirs.append(os.path.dirname(os.path.abspath(uri)))
    return [*dirs, os.environ.get("VSR_SCRATCH_DIR") or tempfile.gettempdir()]

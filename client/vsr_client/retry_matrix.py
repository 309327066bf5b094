"""The retry matrix: which failures are tried again, and how often (one table, three users).

    failure                                  retried      by
    S3 5xx, throttling, dropped connections  yes          botocore in the process (10 retries,
                                                          adaptive), then Batch: exit 75
    host lost (spot reclaim, EC2 failure)    yes          Batch: statusReason "Host EC2*"
    bad input (exit 64, 65, 66; 69 device)   never        Batch: EXIT on "6*"
    internal (exit 1, 70, 73, 74)            once         the worker exits 75 on a job's first
                                                          attempt and its own code after

Batch matches a failed attempt against ``evaluateOnExit`` with nothing but the exit code and
the status reasons, so "once" needs the worker's help: it reads ``AWS_BATCH_JOB_ATTEMPT``
and asks for another attempt (exit 75, ``TEMPFAIL``) only on the first. The stack writes
these rules into every job definition; the local scheduler applies the same rules, with the
same attempt variable, so ``vsr-worker run`` and the local server retry exactly as Batch does.

This module must stay importable on Python 3.10 (the Inf1 worker image imports it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import Enum

from vsr_client.codes import ERROR_EXIT_CODES, ErrorCode, ExitCode

ATTEMPT_ENV = "AWS_BATCH_JOB_ATTEMPT"  # set by Batch (and the local scheduler): 1, 2, ...
RETRY_EXIT_CODE = ExitCode.TEMPFAIL
HOST_LOSS_REASON = "Host EC2*"
DEFAULT_ATTEMPTS = 3  # the stack's vsr:compute.job_attempts default; the local scheduler's too


class Retry(Enum):
    NEVER = "never"  # bad input: another attempt cannot fix it
    ONCE = "once"  # an internal failure: one more attempt in a fresh container, then stop
    TRANSIENT = "transient"  # storage or host trouble: up to the job's attempts


RETRY_MATRIX: dict[ExitCode, Retry] = {
    ExitCode.USAGE: Retry.NEVER,
    ExitCode.DATA: Retry.NEVER,
    ExitCode.NO_INPUT: Retry.NEVER,
    ExitCode.UNAVAILABLE: Retry.NEVER,  # the host lacks the stack's device: a configuration error
    ExitCode.FAILURE: Retry.ONCE,
    ExitCode.SOFTWARE: Retry.ONCE,
    ExitCode.CANTCREAT: Retry.ONCE,  # a full disk may be another job's doing
    ExitCode.IOERR: Retry.ONCE,  # a damaged part is re-made by upscale's next attempt
    ExitCode.TEMPFAIL: Retry.TRANSIENT,
}


def retry_class(code: ErrorCode) -> Retry:
    return RETRY_MATRIX[ERROR_EXIT_CODES.get(code, ExitCode.FAILURE)]


def batch_attempt(environ: Mapping[str, str] | None = None) -> int | None:
    """This attempt's number under Batch (or the local scheduler); None when run by hand."""
    value = (os.environ if environ is None else environ).get(ATTEMPT_ENV, "")
    return int(value) if value.isdigit() else None


def exit_status(code: ErrorCode, attempt: int | None) -> int:
    """The worker's exit status for an error ``code`` on ``attempt`` (None outside Batch)."""
    status = ERROR_EXIT_CODES.get(code, ExitCode.FAILURE)
    if attempt == 1 and RETRY_MATRIX[status] is Retry.ONCE:
        return int(RETRY_EXIT_CODE)
    return int(status)


def _prefix_pattern(codes: list[str], others: list[str]) -> str:
    """One Batch glob (digits, then ``*``) matching every code in ``codes`` and none of ``others``."""
    prefix = min(codes)
    while prefix and not all(c.startswith(prefix) for c in codes):
        prefix = prefix[:-1]
    if not prefix or any(o.startswith(prefix) for o in others):
        raise ValueError(f"exit codes {codes} share no prefix that excludes {others}")
    return prefix + "*"


def evaluate_on_exit() -> list[dict[str, str]]:
    """Batch's ``evaluateOnExit`` rules for every job definition (first match wins; at most 5)."""
    never = [str(int(c)) for c, r in RETRY_MATRIX.items() if r is Retry.NEVER]
    others = [str(int(c)) for c, r in RETRY_MATRIX.items() if r is not Retry.NEVER]
    return [
        {"onStatusReason": HOST_LOSS_REASON, "action": "RETRY"},
        {"onExitCode": _prefix_pattern(never, others), "action": "EXIT"},
        {"onExitCode": str(int(RETRY_EXIT_CODE)), "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ]


def _glob(pattern: str, value: str) -> bool:
    """Batch's patterns: an exact string, or a prefix ending in ``*``."""
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def batch_action(exit_code: int | None, status_reason: str = "", reason: str = "") -> str:
    """What Batch does with a failed attempt under :func:`evaluate_on_exit`: RETRY or EXIT.

    As documented for ``EvaluateOnExit``: every condition a rule names must match, the first
    matching rule decides, and an attempt no rule matches is retried.
    """
    seen = {
        "onExitCode": "" if exit_code is None else str(exit_code),
        "onStatusReason": status_reason,
        "onReason": reason,
    }
    for rule in evaluate_on_exit():
        conditions = {k: v for k, v in rule.items() if k != "action"}
        if all(_glob(pattern, seen[k]) for k, pattern in conditions.items()):
            return rule["action"]
    return "RETRY"

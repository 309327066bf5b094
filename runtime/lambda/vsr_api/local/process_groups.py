"""Job processes that cannot outlive the local server.

Each job runs in a process of its own, leader of a new process group that its stage processes
join; three measures keep none of them running after the server is gone:

* the job process asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``,
  Linux), even by SIGKILL, and answers it by killing its whole group;
* the server ends each group on shutdown, cancel and job end (stragglers included);
* every such process carries ``VSR_LOCAL_DATA_DIR`` in its environment, so a server starting
  on the same data directory finds and kills what a crashed one left (``kill_leftovers``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from pathlib import Path

DATA_DIR_ENV = "VSR_LOCAL_DATA_DIR"
JOB_ENV = "VSR_LOCAL_JOB"
PARENT_ENV = "VSR_LOCAL_PARENT"
_PR_SET_PDEATHSIG = 1
_PROC = Path("/proc")


def die_with_parent(parent_pid: int) -> None:
    """In a job process: be sent SIGTERM when the server dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.killpg(os.getpgrp(), signal.SIGKILL)


def _stat(pid: str) -> tuple[str, int] | None:
    """(state, process group) of a live process, from /proc/<pid>/stat."""
    try:
        text = (_PROC / pid / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    return fields[0], int(fields[2])


def group_alive(pgid: int) -> bool:
    """Whether any process of the group runs (zombies, already dead, do not count)."""
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            seen = _stat(entry.name)
            if seen is not None and seen[1] == pgid and seen[0] != "Z":
                return True
    return False


def end_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM to the group, then SIGKILL to whatever still runs after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.05)


def marked_processes(data_dir: Path) -> list[int]:
    """Live processes (not this one) started for jobs of ``data_dir``, by their environment."""
    if not _PROC.is_dir():
        return []
    mark = f"{DATA_DIR_ENV}={data_dir}".encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_leftovers(data_dir: Path) -> list[int]:
    """SIGKILL every process a previous server on ``data_dir`` left running; their pids."""
    pids = marked_processes(data_dir)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


def job_environment(data_dir: Path, job_id: str) -> dict[str, str]:
    return {DATA_DIR_ENV: str(data_dir), JOB_ENV: job_id, PARENT_ENV: str(os.getpid())}

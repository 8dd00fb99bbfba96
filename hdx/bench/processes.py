"""Child processes of benchmarks: stop them for sure, in bounded time, with what they started.

A benchmark starts servers, X servers, VNC servers and browsers, and those start more processes
of their own, some in process groups of their own (Playwright launches Chromium in a new
session). Waiting on a direct child is not enough: a grandchild that hangs (a Chromium whose
browser process died while its zygotes spin) keeps a run going for ever. So this module finds
processes through ``/proc`` (by ancestry, or by a word in their command line that survives
re-parenting, such as a browser profile's folder) and kills them together with their process
groups. Linux only, as hdx is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

STOP_TIMEOUT_S = 10.0
_PROC = Path("/proc")


def stop_process(popen: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait up to :data:`STOP_TIMEOUT_S`, then SIGKILL: a benchmark never leaves a
    server behind, and never waits forever for one (idempotent)."""
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=STOP_TIMEOUT_S)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of ``pid``; None if it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name may hold spaces and ")"
    return fields[0], int(fields[1]), int(fields[2])


def _pids() -> list[int]:
    return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie has exited; only its entry is left
    until its parent reaps it)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), zombies included."""
    children: dict[int, list[int]] = {}
    for other in _pids():
        stat = _stat(other)
        if stat is not None:
            children.setdefault(stat[1], []).append(other)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def command_line(pid: int) -> list[str]:
    """``pid``'s arguments (empty for a zombie, a kernel thread, or a process that is gone)."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def executable(pid: int) -> str:
    """The file ``pid`` runs ("" when it cannot be read: gone, a zombie, not ours)."""
    try:
        return os.readlink(_PROC / str(pid) / "exe")
    except OSError:
        return ""


def processes_naming(word: str, executable_word: str = "") -> list[int]:
    """Live processes whose command line contains ``word`` (and whose executable's file name
    contains ``executable_word``), this process excluded."""
    me = os.getpid()
    return [pid for pid in _pids()
            if pid != me and any(word in arg for arg in command_line(pid))
            and executable_word in os.path.basename(executable(pid))]


def kill_processes(pids: Iterable[int]) -> list[int]:
    """SIGKILL ``pids`` and every process group they belong to (but never this process's own
    group): a group outlives its leader, so this also reaches children that were re-parented
    when their parent died. Returns the pids that were alive."""
    own_group = os.getpgrp()
    killed: list[int] = []
    groups: set[int] = set()
    for pid in pids:
        stat = _stat(pid)
        if stat is None or pid == os.getpid():
            continue
        if stat[2] != own_group:
            groups.add(stat[2])
        if stat[0] != "Z":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    return killed


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid``, everything below it and their process groups; repeated while new
    processes appear (a parent may fork while its siblings are being killed)."""
    killed: list[int] = []
    for _ in range(5):
        batch = [p for p in [pid, *descendants(pid)] if alive(p) and p not in killed]
        if not batch:
            break
        killed += kill_processes(batch)
    return killed


def run_bounded(command: Sequence[str], timeout_s: float, *, stdout: IO[Any] | None = None,
                stderr: IO[Any] | None = None, cwd: str | Path | None = None,
                env: Mapping[str, str] | None = None) -> int | None:
    """Run ``command`` in a session of its own for at most ``timeout_s``, its output going to
    ``stdout``/``stderr`` (default: this process's); its exit status, or None if it ran out of
    time. Either way nothing it started is left running: its tree and its session's process
    group are killed (so output files, unlike pipes, are complete and closed when this
    returns). Ctrl-C kills it too (a new session does not get the terminal's signals) and is
    then raised here."""
    popen = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=stdout,
                             stderr=stderr, cwd=cwd, env=env, start_new_session=True)
    try:
        return popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if popen.returncode is None:
            kill_tree(popen.pid)  # while it lives: its tree, groups of their own included
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)  # whatever it left behind in its session
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=STOP_TIMEOUT_S)


def wait_gone(pids: Iterable[int], timeout_s: float = STOP_TIMEOUT_S) -> list[int]:
    """Wait until none of ``pids`` is alive, at most ``timeout_s``; those still alive."""
    deadline = time.monotonic() + timeout_s
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if alive(pid)]
    return left

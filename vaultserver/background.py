"""How Vault moves work that can wait (a scheduled backup now, conversion workers later) to the OS's
background priority, so the Mac stays quick for the people using it and the gallery keeps serving.

One function, `lower_priority`, for every such process. Linux: nice 19 and the idle I/O class (the
`ioprio_set` system call, through ctypes, where the machine's call number is known). macOS: nice 19 and the
background QoS band (`setpriority(PRIO_DARWIN_PROCESS, pid, PRIO_DARWIN_BG)`), which throttles CPU and disk
the way Time Machine is throttled. What an OS does not offer is skipped quietly: low priority is a courtesy,
never a reason for the work to fail.

It is safe as a `subprocess.Popen(preexec_fn=...)`: everything it needs is looked up when this module is
imported, and in the child it only makes system calls (no imports, no logging, no locks), since a forked
child of a threaded process must not wait on a lock another thread held.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

BACKGROUND_NICE = 19  # the lowest CPU priority there is

# Linux: ioprio_set(IOPRIO_WHO_PROCESS, pid, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT): disk time only when
# nobody else wants it. The call has a different number on each architecture (there is no libc wrapper).
IOPRIO_SET_CALLS = {"x86_64": 251, "i386": 289, "i686": 289, "aarch64": 30, "arm64": 30, "riscv64": 30,
                    "loongarch64": 30, "armv7l": 314, "armv6l": 314, "ppc64le": 273, "ppc64": 273,
                    "s390x": 282}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_IDLE = 3
IOPRIO_CLASS_SHIFT = 13

# macOS <sys/resource.h>: the background band for a whole process.
PRIO_DARWIN_PROCESS = 4
PRIO_DARWIN_BG = 0x1000


# Linux prctl(PR_SET_PDEATHSIG, SIGKILL): a worker's ffmpeg ends with the worker, even one killed with -9.
PR_SET_PDEATHSIG = 1
SIGKILL = 9


def _libc(function: str, machine_known: bool = True):
    if not sys.platform.startswith("linux") or not machine_known:
        return None
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), function)
    except (OSError, AttributeError):
        return None


_SYSCALL = _libc("syscall", platform.machine() in IOPRIO_SET_CALLS)
_PRCTL = _libc("prctl")
_IOPRIO_SET = IOPRIO_SET_CALLS.get(platform.machine())
_DARWIN = sys.platform == "darwin"


def lower_priority(pid: int = 0) -> None:
    """Put process `pid` (0: this one) at background priority, CPU and disk, as far as the OS allows.

    With no argument it is a `preexec_fn`: the child starts its program already in the background, and
    whatever that program starts inherits it. Failures (a platform without the call, a sandbox refusing it)
    are ignored on purpose.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, pid, BACKGROUND_NICE)
    except (OSError, AttributeError):
        pass
    if _DARWIN:
        try:
            os.setpriority(PRIO_DARWIN_PROCESS, pid, PRIO_DARWIN_BG)
        except OSError:
            pass
    elif _SYSCALL is not None and _IOPRIO_SET is not None:
        # The result is not checked: an old kernel or a seccomp filter saying no leaves the nice value alone.
        _SYSCALL(_IOPRIO_SET, IOPRIO_WHO_PROCESS, pid, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)


def own_command(*args: str) -> list[str]:
    """`vaultserver ARGS…` run by the interpreter (or the packaged app) that runs this Vault, so a background
    child (a scheduled backup, a conversion worker) runs the same code as the process that started it."""
    program = [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "vaultserver"]
    return [*program, *args]


def background_child() -> None:
    """`preexec_fn` of a conversion's ffmpeg: background priority, and (Linux) killed when the thread that
    started it ends, so a worker that dies does not leave its ffmpeg running. On macOS an orphaned ffmpeg
    stops at its next write to the pipes its dead worker held."""
    lower_priority()
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)

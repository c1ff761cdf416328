"""Measure commands in a fresh runner process, so CPU time and peak memory belong to this measurement only.

`measure()` starts `python -m bench.runner SPEC`; the runner runs the commands one after another and
prints one JSON line. CPU is `getrusage(RUSAGE_CHILDREN)` (user + sys of every waited-for descendant, e.g.
Vault's ffmpeg). Peak RSS is the larger of the summed RSS of the process tree, sampled every 50 ms from
/proc (Linux), and the largest single process's exact `ru_maxrss` (the only source on macOS).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_SECONDS = 0.05
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def stop(proc: subprocess.Popen | None, timeout: float) -> None:
    """Terminate a server the bench started; kill it if it does not go within `timeout` seconds."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and everything below it: its threads, its live descendants' (e.g. a
    running ffmpeg) and those of the children it has already waited for."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):  # the process ended while we looked
            continue
    return total


@dataclass
class Measurement:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the whole tree
    peak_rss: int  # bytes
    max_single_rss: int  # bytes, the largest single process (exact)
    started: float  # epoch seconds, to line up with the timestamps in Vault's log
    stdout: str

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("stdout", "started")}


def measure(cmds: list[list[str]], env: dict[str, str] | None = None) -> Measurement:
    spec = json.dumps({"cmds": cmds, "env": env or {}})
    done = subprocess.run([sys.executable, "-m", "bench.runner", spec], cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"measured command failed:\n{done.stderr[-3000:]}")
    return Measurement(**json.loads(done.stdout.splitlines()[-1]))


def _tree_rss(pid: int) -> int:
    """Summed RSS of pid and all its descendants (shared pages count once per process)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * _PAGE
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):  # the process ended while we looked
            continue
    return total


def _run(cmds: list[list[str]], env: dict[str, str]) -> dict:
    sampled, outputs = 0, []
    sampling = os.path.isdir("/proc/self/task")
    started, start = time.time(), time.perf_counter()
    for cmd in cmds:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
        finished = threading.Event()

        def sample(pid: int = proc.pid, finished: threading.Event = finished) -> None:
            nonlocal sampled
            while not finished.wait(SAMPLE_SECONDS):
                sampled = max(sampled, _tree_rss(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        if sampling:
            sampler.start()
        out, err = proc.communicate()
        finished.set()
        if sampling:
            sampler.join()
        if proc.returncode != 0:
            sys.stderr.write(f"{' '.join(cmd)}\nexit {proc.returncode}\n{err[-3000:]}\n")
            sys.exit(1)
        outputs.append(out)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    single = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss": max(sampled, single),
            "max_single_rss": single, "started": started, "stdout": "".join(outputs)}


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(_run(spec["cmds"], spec["env"])))


def publish(text: str, results: dict, path: Path) -> int:
    """Print a bench's report and save its results (JSON) where the README says they are."""
    print()
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nResults written to {path.relative_to(REPO)}")
    return 0

"""`make app`: builds Vault with PyInstaller from build_app.spec, then proves the result with its self-check.

It says what it builds, how long that took, where the result is and how big it is (with its largest
parts, since size creeps in unnoticed), so a build log answers those questions without digging.

    .venv/bin/python packaging/build.py [--distpath DIR] [--workpath DIR] [--clean] [--no-self-check]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "build_app.spec"
sys.path.insert(0, str(ROOT))  # vaultserver from this checkout, as the spec sees it

from vaultserver import APP_NAME, __version__  # noqa: E402


def app_path(dist: Path) -> Path:
    """What the build delivers: Vault.app on macOS, the one-folder build elsewhere."""
    return dist / (f"{APP_NAME}.app" if sys.platform == "darwin" else APP_NAME)


def executable(dist: Path) -> Path:
    if sys.platform == "darwin":
        return app_path(dist) / "Contents" / "MacOS" / APP_NAME
    return app_path(dist) / (f"{APP_NAME}.exe" if sys.platform == "win32" else APP_NAME)


def tree_size(path: Path) -> int:
    """Bytes on disk of every file under path; links count once, as the link."""
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(tree_size(child) for child in path.iterdir())


def largest_parts(app: Path, count: int = 5) -> list[tuple[str, int]]:
    """The biggest top-level entries of the bundle's library folder(s)."""
    folders = [app / "Contents" / "Frameworks", app / "Contents" / "Resources"] if app.suffix == ".app" \
        else [app / "_internal"]
    sizes: dict[str, int] = {}
    for folder in folders:
        for entry in folder.iterdir() if folder.is_dir() else []:
            if not entry.is_symlink():
                sizes[entry.name] = sizes.get(entry.name, 0) + tree_size(entry)
    return sorted(sizes.items(), key=lambda item: item[1], reverse=True)[:count]


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.0f} MB"


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.0f} s"


def build(dist: Path, work: Path, clean: bool = False) -> float:
    """Run PyInstaller; returns the seconds it took. Raises CalledProcessError if it fails."""
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", str(work), *(["--clean"] if clean else []), str(SPEC)]
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distpath", type=Path, default=ROOT / "dist", help="where the app goes (dist/)")
    parser.add_argument("--workpath", type=Path, default=ROOT / "build" / "pyinstaller",
                        help="PyInstaller's cache (build/pyinstaller/)")
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's cache first")
    parser.add_argument("--no-self-check", action="store_true", help="do not run the built app's self-check")
    args = parser.parse_args(argv)

    import PyInstaller

    kind = f"{APP_NAME}.app" if sys.platform == "darwin" else "a one-folder app"
    print(f"Building {APP_NAME} {__version__}: {kind} for {sys.platform}-{platform.machine()}, "
          f"with PyInstaller {PyInstaller.__version__} from {SPEC.name}", flush=True)
    try:
        seconds = build(args.distpath, args.workpath, args.clean)
    except subprocess.CalledProcessError as exc:
        print(f"Build FAILED: PyInstaller exited with {exc.returncode} (see above)", file=sys.stderr)
        return 1
    app = app_path(args.distpath)
    parts = ", ".join(f"{name} {megabytes(size)}" for name, size in largest_parts(app))
    print(f"Built {app} in {duration(seconds)}: {megabytes(tree_size(app))} (largest: {parts})", flush=True)
    if args.no_self_check:
        return 0
    print(f"Running {executable(args.distpath)} --self-check", flush=True)
    return subprocess.run([str(executable(args.distpath)), "--self-check"]).returncode


if __name__ == "__main__":
    sys.exit(main())

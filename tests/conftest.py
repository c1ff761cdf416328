"""Real things on a temp dir: paths, services, the API in process or on a real HTTPS server, a pipeline, and
media generated once per run by real ffmpeg.

Rule tests (sign-in, sessions, the gate, bad ids) drive the real Quart app in process (`client`,
`make_app_client`, `make_user`): the same app, services and SQLite as in production, minus TLS and the
pipeline. Tests about TLS, streaming to players and the runtime start a real server (`server`, `make_client`).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.frozen_build import BackgroundBuild, FrozenApp, pyinstaller_installed
from tests.support import Account, AppClient, InProcessApp
from vaultserver.config import AppPaths
from vaultserver.ffmpeg import ffmpeg as find_ffmpeg
from vaultserver.pipeline import Pipeline
from vaultserver.services import Services, open_services, users
from vaultserver.services.items import MediaItem

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The OS keychain is the one true outer boundary: tests use the file key store unless they mock keyring.
os.environ["VAULT_KEYSTORE"] = "file"

# mDNS off: test servers must not announce themselves on the machine's real network.
FAST_SETTINGS: dict[str, Any] = {"stable_seconds": 0.0, "retry_backoff_seconds": 0.05, "local_workers": 2,
                                 "mdns_enabled": False}


# bcrypt's cost in tests, where nobody attacks the hashes: Vault's cost (12) takes about 0.25 s of CPU per
# hash or check, and the suite makes a few hundred. Tests marked `production_password_cost` get Vault's.
PRODUCTION_PASSWORD_COST = users.BCRYPT_ROUNDS
TEST_PASSWORD_COST = 4


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "production_password_cost: bcrypt at the cost Vault uses, not the "
                                       "cheap one the other tests use")


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """In this process only: Vault started as a subprocess hashes at its own cost."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "BCRYPT_ROUNDS", TEST_PASSWORD_COST)
        yield


@pytest.fixture(autouse=True)
def password_cost(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The bcrypt cost this test's passwords are hashed at."""
    if request.node.get_closest_marker("production_password_cost"):
        monkeypatch.setattr(users, "BCRYPT_ROUNDS", PRODUCTION_PASSWORD_COST)
    return users.BCRYPT_ROUNDS


BACKGROUND_BUILD = pytest.StashKey[BackgroundBuild]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the frozen app's build now if a selected test needs it (see tests/frozen_build.py)."""
    wanted = any("frozen_app" in getattr(item, "fixturenames", ()) for item in session.items)
    if wanted and not session.config.option.collectonly and pyinstaller_installed():
        session.config.stash[BACKGROUND_BUILD] = BackgroundBuild()


def pytest_unconfigure(config: pytest.Config) -> None:
    if build := config.stash.get(BACKGROUND_BUILD, None):
        build.discard()


@pytest.fixture(scope="session")
def frozen_app(pytestconfig: pytest.Config) -> FrozenApp:
    """The app as `make app` builds it (build_app.spec via packaging/build.py), built once per run."""
    if not pyinstaller_installed():
        if os.environ.get("CI"):
            pytest.fail("PyInstaller is missing: it is a dev dependency (pip install -e '.[dev]')")
        pytest.skip("PyInstaller is not installed (pip install -e '.[dev]')")
    if BACKGROUND_BUILD not in pytestconfig.stash:
        pytestconfig.stash[BACKGROUND_BUILD] = BackgroundBuild()
    return pytestconfig.stash[BACKGROUND_BUILD].result(timeout=900)


@pytest.fixture(scope="session")
def ffmpeg_bin() -> str:
    return find_ffmpeg()


def wait_for(condition, timeout=60.0, interval=0.1):
    """Poll `condition` until it returns something truthy (and return that), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def make_paths(root: Path) -> AppPaths:
    return AppPaths.scratch(root, **FAST_SETTINGS)


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return make_paths(tmp_path)


@pytest.fixture
def services(paths: AppPaths) -> Iterator[Services]:
    services = open_services(paths)
    yield services
    services.close()


@pytest.fixture
def imports(services: Services) -> Path:
    root = services.settings.current.import_path(services.paths)
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def run_pipeline(services: Services):
    """Process everything in the import folder, like `vaultserver process --once`."""
    def run(timeout: float = 300) -> None:
        assert Pipeline(services).process_once(timeout=timeout), "pipeline did not finish in time"
    return run


OWNER, OWNER_PASSWORD = "owner", "Own3r!pass"
VIEWER, VIEWER_PASSWORD = "viewer", "View3r!pass"
PASSWORD = "Test!pass99"  # meets the password policy


@pytest.fixture
def make_user(services: Services) -> Callable[..., Account]:
    """Create an account: `make_user(role="admin")`; names are unique unless given."""
    numbers = itertools.count(1)

    def make(role: str = "member", password: str = PASSWORD, username: str | None = None) -> Account:
        user = services.users.create(username or f"{role}{next(numbers)}", password, role)
        return Account(user.id, user.username, password, user.role)
    return make


@pytest.fixture
def app(services: Services):
    """The real Quart app over `services` (real SQLite on a temp dir); no server, no pipeline."""
    from vaultserver.api import create_app

    return create_app(services)


@pytest.fixture
def make_app_client(app) -> Iterator[Callable[..., AppClient]]:
    """Clients of the in-process app; `peer` is the address the network gate sees."""
    running = InProcessApp(app)

    def make(peer: str = "127.0.0.1") -> AppClient:
        return AppClient(running, peer)
    yield make
    running.close()


@pytest.fixture
def client(make_app_client) -> AppClient:
    """A client of the in-process app from this machine (127.0.0.1)."""
    return make_app_client()


@pytest.fixture
def viewer_account(make_user) -> Account:
    """A family member's account (viewer)."""
    return make_user(role="member")


@pytest.fixture
def owner_account(make_user) -> Account:
    """The owner's account (admin)."""
    return make_user(role="admin")


@pytest.fixture
def viewer(make_app_client, viewer_account) -> AppClient:
    """The viewer, signed in to the in-process app."""
    client = make_app_client()
    assert client.login(viewer_account.username, viewer_account.password).status == 200
    return client


@pytest.fixture
def owner(make_app_client, owner_account) -> AppClient:
    """The owner, signed in to the in-process app."""
    client = make_app_client()
    assert client.login(owner_account.username, owner_account.password).status == 200
    return client


def start_server(paths: AppPaths, services: Services):
    """Start a real Vault (HTTPS server + pipeline) on an ephemeral port, with an owner and a viewer."""
    from vaultserver.runtime import VaultRuntime

    services.users.create(OWNER, OWNER_PASSWORD, "admin")
    services.users.create(VIEWER, VIEWER_PASSWORD, "member")
    runtime = VaultRuntime(paths, services)
    runtime.start(serve=True, host="127.0.0.1", port=0)
    return runtime


@pytest.fixture
def server(services, paths):
    """A real Vault (HTTPS server + pipeline) on an ephemeral port, with an owner and a viewer account."""
    runtime = start_server(paths, services)
    yield runtime
    runtime.stop()


@pytest.fixture
def make_client(server, paths):
    from tests.support import ApiClient

    def make(source: str | None = None) -> ApiClient:
        return ApiClient(server.endpoint.port, paths.private / "tls" / "ca.pem", source)
    return make


class MediaFactory:
    """Generates small real media with the bundled ffmpeg and Pillow, cached for the whole test run."""

    def __init__(self, root: Path, ffmpeg: str) -> None:
        self.root = root
        self.ffmpeg = ffmpeg

    def _cached(self, name: str, make) -> Path:
        path = self.root / name
        if not path.exists():
            partial = path.with_name("partial-" + name)
            make(partial)
            partial.rename(path)
        return path

    def _run(self, *args: str) -> None:
        subprocess.run([self.ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)

    def video(self, seconds: float = 2, size: str = "640x360", fmt: str = "mp4", audio: bool = True,
              rate: int = 25, codec: str = "libx264", pix_fmt: str = "yuv420p",
              extra: tuple = ()) -> Path:
        tag = "_".join(map(str, (seconds, size, rate, audio, codec, pix_fmt, *extra)))
        name = f"v_{abs(hash(tag))}.{fmt}"

        def make(dest: Path) -> None:
            args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
            if audio:
                args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
            args += ["-t", str(seconds), "-c:v", codec, "-pix_fmt", pix_fmt, *extra]
            if codec == "libx264":
                args += ["-preset", "ultrafast"]
            if audio:
                args += ["-c:a", "libopus" if fmt == "webm" else "aac"]
            self._run(*args, "-f", {"mkv": "matroska", "m4v": "mp4"}.get(fmt, fmt), str(dest))
        return self._cached(name, make)

    def rotated_video(self, degrees: int = 90) -> Path:
        source = self.video(seconds=2, size="640x360")
        return self._cached(f"rotated_{degrees}.mp4", lambda dest: self._run(
            "-display_rotation", str(degrees), "-i", str(source), "-c", "copy", "-f", "mp4", str(dest)))

    def hdr_video(self) -> Path:
        return self.video(seconds=2, size="320x240", fmt="mkv", audio=False, pix_fmt="yuv420p10le",
                          extra=("-bsf:v", "h264_metadata=transfer_characteristics=16:colour_primaries=9:"
                                 "matrix_coefficients=9"))

    def vfr_video(self) -> Path:
        def make(dest: Path) -> None:
            self._run("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "3",
                      "-vf", "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'", "-fps_mode", "vfr",
                      "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4",
                      str(dest))
        return self._cached("vfr.mp4", make)

    def image(self, name: str, size: tuple[int, int] = (640, 480), mode: str = "RGB",
              fmt: str | None = None, **save_args) -> Path:
        def make(dest: Path) -> None:
            base = Image.radial_gradient("L").resize(size)
            pictures = {
                "RGB": lambda: Image.merge("RGB", (base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                                   base.transpose(Image.Transpose.FLIP_TOP_BOTTOM))),
                "RGBA": lambda: Image.merge("RGBA", (base, base, base, base)),
                "CMYK": lambda: Image.merge("CMYK", (base, base, base, Image.new("L", size, 20))),
                "I;16": lambda: base.point(lambda v: v * 256).convert("I").convert("I;16"),
                "L": lambda: base,
                "P": lambda: base.convert("P"),
            }
            pictures[mode]().save(dest, fmt or name.rsplit(".", 1)[-1].upper().replace("JPG", "JPEG"),
                                  **save_args)
        return self._cached(name, make)

    def animated_gif(self, frames: int = 5) -> Path:
        def make(dest: Path) -> None:
            images = [Image.new("RGB", (120, 80), (i * 50 % 256, 80, 200 - i * 30)) for i in range(frames)]
            images[0].save(dest, "GIF", save_all=True, append_images=images[1:], duration=120, loop=0)
        return self._cached(f"anim_{frames}.gif", make)

    def copy_into(self, source: Path, folder: Path, name: str | None = None) -> Path:
        dest = folder / (name or source.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return dest


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: str) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("media"), ffmpeg_bin)


@dataclass
class Library:
    """A data folder holding one photo ("api.jpg") and one 3 s video ("clip.mp4"), converted once per run.

    Shared by every test that asks for it: tests may add accounts (`make_user`) and sessions, but must not
    change its settings or its items.
    """

    paths: AppPaths
    services: Services
    items: dict[str, MediaItem]  # by type: "image", "video"
    accounts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def make_user(self, role: str = "member", password: str = PASSWORD) -> Account:
        user = self.services.users.create(f"shared-{role}{next(self.accounts)}", password, role)
        return Account(user.id, user.username, password, user.role)


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory, media: MediaFactory) -> Iterator[Library]:
    paths = make_paths(tmp_path_factory.mktemp("library"))
    services = open_services(paths)
    imports = services.settings.current.import_path(paths)
    media.copy_into(media.image("api.jpg", size=(800, 600)), imports)
    media.copy_into(media.video(seconds=3, size="640x360"), imports, "clip.mp4")
    assert Pipeline(services).process_once(timeout=300), "pipeline did not finish in time"
    items = {item.type: item for item in services.library.all_items()}
    assert set(items) == {"image", "video"}
    yield Library(paths, services, items)
    services.close()


@pytest.fixture
def controller(qtbot, paths, services):
    """A started app controller (server on 127.0.0.1:0, pipeline running) with an owner and a viewer."""
    from gui.controller import VaultController  # Qt only for the tests that ask for the app

    services.users.create(OWNER, OWNER_PASSWORD, "admin")
    services.users.create(VIEWER, VIEWER_PASSWORD, "member")
    vault = VaultController(paths, services, host="127.0.0.1", port=0, poll_ms=100)
    with qtbot.waitSignal(vault.started, timeout=30_000):
        vault.start()
    yield vault
    vault.shutdown()


@pytest.fixture
def window(qtbot, controller):
    """The admin window of the started app, shown (offscreen)."""
    from gui.window import AdminWindow

    win = AdminWindow(controller)
    qtbot.addWidget(win)
    win.show()
    return win

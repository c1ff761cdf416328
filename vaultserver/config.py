"""Where Vault keeps its data, and every setting it has, each declared exactly once.

The settings model below is the single declaration (name, type, default, validation, help text) that the
CLI, the settings file, the admin API and the GUI's settings pages all read.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vaultserver import APP_NAME
from vaultserver.errors import ConfigurationError
from vaultserver.errors import ValidationError as VaultValidationError

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# What makes a data folder a scratch one (AppPaths.scratch); see there for why each.
SCRATCH_SETTINGS: dict[str, Any] = {"keystore": "file", "mdns_enabled": False, "stable_seconds": 0.0}


def bundled_path(*parts: str) -> Path:
    """A file shipped beside the code: from the checkout's top folder, or inside the frozen app's bundle."""
    import sys

    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parents[1]))
    return base.joinpath(*parts)


def resource_path(*parts: str) -> Path:
    return bundled_path("resources", *parts)


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`--data-dir` wins over `VAULT_HOME`, which wins over the platform's application-support folder."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if env := os.environ.get("VAULT_HOME"):
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class AppPaths:
    """Every path inside one data dir. Names in `library/` are opaque ids, never original names."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "vault.db"

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.toml"

    @property
    def private(self) -> Path:
        return self.root / "private"

    @property
    def library(self) -> Path:
        return self.root / "library"

    @property
    def staging(self) -> Path:
        # Inside library/ so that committing an item is a rename on the same file system.
        return self.library / ".staging"

    @property
    def default_imports(self) -> Path:
        return self.root / "imports"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def runtime_lock(self) -> Path:
        return self.root / ".vault.lock"

    def ensure(self) -> AppPaths:
        """Create the layout, owner-only: the database, logs, settings and failed/ (plaintext originals) are
        nobody else's business, and `private/` holds keys and TLS material. The root and `private/` are set
        to 0700 whatever the umask, and put back to it if something opened them up."""
        for path in (self.root, self.library, self.staging, self.failed, self.logs, self.private):
            path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        for path in (self.root, self.private):
            self._owner_only(path)
        return self

    @staticmethod
    def _owner_only(folder: Path) -> None:
        mode = folder.stat().st_mode & 0o777
        if mode == PRIVATE_DIR_MODE:
            return
        try:
            os.chmod(folder, PRIVATE_DIR_MODE)
        except OSError as exc:  # not ours to change (another owner): `vaultserver doctor` says what to do
            log.warning("%s is open to other users (mode %o) and could not be made owner-only: %s",
                        folder, mode, exc)
            return
        if mode & 0o077:
            log.warning("%s was open to other users (mode %o); made it owner-only (700)", folder, mode)

    @classmethod
    def scratch(cls, root: Path, **settings: Any) -> AppPaths:
        """A throwaway data folder under `root` that touches nothing outside it: the master key in the file
        key store (never the keychain), no mDNS announcement on the real network, and imports taken as soon
        as they land. `settings` go over those (the self-check, the GUI's offscreen modes and the tests)."""
        paths = cls(root / "vault").ensure()
        save_settings(paths, Settings(**{**SCRATCH_SETTINGS, **settings}))
        return paths


def default_worker_count() -> int:
    """What the machine can spare for conversion: half its cores, at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


def _setting(default: Any, help: str, *, label: str, section: str, local_only: bool = False,
             **constraints: Any) -> Any:
    """One setting's declaration. `local_only`: changed on this Mac only (the settings file, the app), never
    over the network: the admin API refuses it."""
    extra: dict[str, Any] = {"label": label, "section": section}
    if local_only:
        extra["local_only"] = True
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class Settings(BaseModel):
    """All owner-editable settings. Each field is one declaration: type, default, bounds, label, help."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True, frozen=True)

    import_dir: str = _setting(
        "", "Folder watched for new photos and videos. Empty means <data dir>/imports. Changed only on this "
        "Mac: Vault empties the folder it watches.",
        label="Import folder", section="storage", local_only=True)
    keep_originals: bool = _setting(
        False, "Keep each original file, encrypted, in the library after it is converted.",
        label="Keep originals (encrypted)", section="storage")
    local_workers: int = _setting(
        default_worker_count(), "How many files this Mac converts at the same time, each in a worker process "
        "at background priority. 0: only worker machines convert.",
        label="Conversions on this Mac", section="storage", ge=0, le=16)
    stable_seconds: float = _setting(
        2.0, "A new file is taken only after its size and time stamp stayed unchanged this long.",
        label="Wait for copies to finish (s)", section="storage", ge=0.0, le=600.0)
    rescan_seconds: float = _setting(
        30.0, "How often the import folder is re-read in full, in case a file event was missed.",
        label="Rescan interval (s)", section="storage", ge=1.0, le=3600.0)
    max_attempts: int = _setting(
        3, "How many times a file is tried before it is moved to the failed folder.",
        label="Attempts per file", section="storage", ge=1, le=10)
    retry_backoff_seconds: float = _setting(
        10.0, "Wait before the first retry; doubled for each further try.",
        label="Retry backoff (s)", section="storage", ge=0.0, le=3600.0)
    max_upload_gb: int = _setting(
        50, "The largest file one upload from a browser may be, in GB; an upload is also refused when the "
        "disk would be left nearly full.",
        label="Largest upload (GB)", section="storage", ge=1, le=10_000)
    backup_dir: str = _setting(
        "", "Folder Vault backs up to on a schedule (an external disk, a NAS mount, a synced folder). Empty "
        "means no scheduled backups. Changed only on this Mac: it names a disk attached to it.",
        label="Backup folder", section="storage", local_only=True)
    backup_every_hours: int = _setting(
        24, "How often a scheduled backup runs; a missed one runs as soon as the backup disk is back.",
        label="Back up every (hours)", section="storage", ge=1, le=168)
    backup_keep_days: int = _setting(
        30, "Snapshots in the backup are kept this long, so a deleted photo can still be restored.",
        label="Keep backups (days)", section="storage", ge=1, le=3650)
    key_rotation_days: int = _setting(
        30, "The master key is due for rotation this many days after it was created.",
        label="Master key rotation (days)", section="security", ge=1, le=365)
    keystore: str = _setting(
        "auto", "Where the master key lives: 'keychain' (the OS keychain), 'file' (a 0600 file in "
        "private/), or 'auto' (the keychain where one works, else the file). Changed only on this Mac: "
        "the key already made would stay behind in the old place.",
        label="Master key storage", section="security", local_only=True)

    port: int = _setting(
        1027, "HTTPS port the gallery is served on.", label="Port", section="network", ge=1, le=65535)
    host: str = _setting(
        "0.0.0.0", "Address to listen on: 0.0.0.0 for every interface, 127.0.0.1 for this Mac only.",
        label="Listen address", section="network")
    allowed_networks: list[str] = _setting(
        ["127.0.0.1/32", "::1/128", "192.168.1.0/24"],
        "Networks whose devices may connect (CIDR). Everyone else gets 403 before anything else happens.",
        label="Allowed networks", section="network")
    vpn_subnet: str = _setting(
        "10.8.0.0/24", "The home OpenVPN subnet; its devices are allowed too. Empty to turn off.",
        label="VPN subnet", section="network")
    allow_local_networks: bool = _setting(
        False, "Also allow the networks this Mac is on right now (follows the Mac when it moves).",
        label="Allow this Mac's own networks", section="network")
    trusted_proxies: list[str] = _setting(
        [], "Reverse proxies whose X-Forwarded-For header is believed. Empty: the header is ignored.",
        label="Trusted proxies", section="network")
    mdns_enabled: bool = _setting(
        True, "Advertise Vault on the local network (Bonjour) so devices can find it by name.",
        label="Advertise on the LAN (mDNS)", section="network")
    idle_timeout_minutes: int = _setting(
        30, "A device that makes no request for this long is signed out.",
        label="Idle sign-out (minutes)", section="security", ge=1, le=24 * 60)
    max_devices: int = _setting(
        5, "Devices one user may be signed in on; the least recently active is signed out past this.",
        label="Devices per user", section="security", ge=1, le=50)
    audit_retention_days: int = _setting(
        365, "Activity log entries older than this are deleted (checked daily).",
        label="Keep activity log (days)", section="security", ge=1, le=10 * 365)
    session_retention_days: int = _setting(
        90, "Records of signed-out and expired devices older than this are deleted (checked daily).",
        label="Keep ended sessions (days)", section="security", ge=1, le=10 * 365)

    @field_validator("allowed_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(item.strip(), strict=False)) for item in value]

    @field_validator("vpn_subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        return str(ipaddress.ip_network(value.strip(), strict=False)) if value.strip() else ""

    @field_validator("keystore")
    @classmethod
    def _known_keystore(cls, value: str) -> str:
        if value not in {"auto", "keychain", "file"}:
            raise ValueError("must be one of auto, keychain, file")
        return value

    def import_path(self, paths: AppPaths) -> Path:
        return Path(self.import_dir).expanduser() if self.import_dir else paths.default_imports

    def updated(self, **changes: Any) -> Settings:
        """A validated copy with `changes` applied; bad values raise VALIDATION_001 naming the field."""
        try:
            return Settings.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise _validation_error(exc) from exc


def _validation_error(exc: ValidationError) -> VaultValidationError:
    problems = {".".join(map(str, e["loc"])): e["msg"] for e in exc.errors()}
    return VaultValidationError("Invalid settings: " + "; ".join(f"{k}: {v}" for k, v in problems.items()),
                                details={"fields": problems})


def load_settings(paths: AppPaths) -> Settings:
    """Read settings.toml; missing file means defaults. A broken file is an error, never silently reset."""
    if not paths.settings_file.exists():
        return Settings()
    try:
        raw = tomllib.loads(paths.settings_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"Cannot read {paths.settings_file}: {exc}") from exc
    unknown = set(raw) - set(Settings.model_fields)
    if unknown:
        log.warning("Ignoring unknown settings in %s: %s", paths.settings_file, ", ".join(sorted(unknown)))
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc) from exc


def save_settings(paths: AppPaths, settings: Settings) -> None:
    """Write atomically so a crash never leaves a half-written settings file."""
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = paths.settings_file.with_suffix(".toml.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # a leftover .tmp from a crash may have had another mode
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(tomli_w.dumps(settings.model_dump()))
    os.replace(tmp, paths.settings_file)

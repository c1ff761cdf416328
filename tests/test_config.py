"""Settings are declared once, validated, persisted; the data dir is found the documented way."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultserver.config import AppPaths, Settings, load_settings, resolve_data_dir
from vaultserver.errors import ValidationError


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("VAULT_HOME", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("VAULT_HOME")
    assert resolve_data_dir().name == "Vault"


def test_every_setting_has_a_label_a_section_and_help():
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra or {}
        assert field.description and extra.get("label") and extra.get("section"), name


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert [name for name in Settings.model_fields if f"| `{name}` |" not in readme] == []


def test_bad_values_are_rejected_with_the_field_named_and_nothing_saved(services):
    before = services.paths.settings_file.read_text()
    with pytest.raises(ValidationError) as caught:
        services.settings.update(local_workers=-1, keystore="cloud")
    assert caught.value.code == "VALIDATION_001"
    assert set(caught.value.details["fields"]) == {"local_workers", "keystore"}
    assert services.paths.settings_file.read_text() == before


def test_changes_persist_and_listeners_hear_them(services):
    heard = []
    services.settings.subscribe(lambda old, new: heard.append((old.keep_originals, new.keep_originals)))
    services.settings.update(keep_originals=True)
    assert heard == [(False, True)]
    assert load_settings(services.paths).keep_originals is True


def test_a_corrupt_settings_file_is_an_error_not_a_silent_reset(tmp_path):
    paths = AppPaths(tmp_path).ensure()
    paths.settings_file.write_text("local_workers = [")
    with pytest.raises(Exception, match="Cannot read"):
        load_settings(paths)


def test_import_folder_defaults_inside_the_data_dir(tmp_path):
    paths = AppPaths(tmp_path)
    assert Settings().import_path(paths) == tmp_path / "imports"
    assert Settings(import_dir="~/Drop").import_path(paths) == Path("~/Drop").expanduser()

"""Master-key rotation re-wraps every data key, survives a crash half way, and its due date is visible."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vaultserver.crypto import envelope
from vaultserver.services.items import IMAGE_FILE


@pytest.fixture
def library_with_photos(media, imports, run_pipeline, services):
    for n in range(3):
        media.copy_into(media.image(f"k{n}.png", size=(64 + n, 64)), imports)
    run_pipeline()
    items = services.library.all_items()
    return {item.id: services.library.read(item.id, IMAGE_FILE) for item in items}


def test_rotation_rewraps_every_key_and_retires_the_old_master(services, library_with_photos):
    old = services.keys.status()
    result = services.keys.rotate()
    new = services.keys.status()
    assert result.rewrapped == old.data_keys == 3
    assert new.master_key_id != old.master_key_id and new.master_keys_in_use == 1
    services.keys.forget(list(services.keys._cache))  # read through the new wrapping, not the cache
    for media_id, data in library_with_photos.items():
        assert services.library.read(media_id, IMAGE_FILE) == data
    assert [e.event for e in services.audit.recent(event="keys_rotated")] == ["keys_rotated"]


def test_a_crash_during_rotation_loses_nothing_and_is_finished_on_start(services, library_with_photos,
                                                                        monkeypatch):
    real_wrap, calls = envelope.wrap, []

    def crash_after_one(*args):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt("power cut")
        return real_wrap(*args)

    monkeypatch.setattr("vaultserver.services.keys.REWRAP_BATCH", 1)
    monkeypatch.setattr(envelope, "wrap", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        services.keys.rotate()
    monkeypatch.setattr(envelope, "wrap", real_wrap)
    assert services.keys.status().master_keys_in_use == 2
    services.keys.forget(list(services.keys._cache))
    for media_id, data in library_with_photos.items():
        assert services.library.read(media_id, IMAGE_FILE) == data
    assert services.keys.finish_interrupted_rotation() == 2
    assert services.keys.status().master_keys_in_use == 1


def test_rotation_is_due_after_the_configured_days(services, monkeypatch):
    status = services.keys.status()
    assert status.rotation_due_at - status.created_at == timedelta(days=30)
    assert not status.rotation_overdue
    later = status.created_at + timedelta(days=31)
    monkeypatch.setattr("vaultserver.services.keys.utcnow", lambda: later)
    assert services.keys.status().rotation_overdue


def test_deleting_an_item_shreds_its_keys_and_files(services, library_with_photos):
    media_id = next(iter(library_with_photos))
    services.library.delete(media_id, actor="owner")
    assert not services.library.item_dir(media_id).exists()
    assert services.keys.status().data_keys == 2

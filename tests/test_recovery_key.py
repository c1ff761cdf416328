"""The recovery key: a phrase a typo cannot slip through, kept nowhere by Vault, that opens every master key
made after it, rotations included, and no other phrase does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vaultserver.crypto import recovery
from vaultserver.crypto.keystore import KeyRing, open_key_store
from vaultserver.errors import ConfigurationError, IntegrityError, ValidationError


def test_a_phrase_is_24_known_words_and_survives_the_ways_people_type_it():
    phrase = recovery.new_phrase()
    assert len(phrase.split()) == 24
    typed = "  " + "\n".join(word.upper() for word in phrase.split()) + " "
    assert recovery.check_phrase(typed) == phrase
    key = recovery.RecoveryKey.from_phrase(typed)
    assert key.public == recovery.RecoveryKey.from_phrase(phrase).public


@pytest.mark.parametrize("damage, message", [
    (lambda words: words[:-1], "has 23"),
    (lambda words: [*words[:5], "vaultz", *words[6:]], "word 6 ('vaultz')"),
    (lambda words: [words[1], words[0], *words[2:]], None),  # two words swapped
])
def test_a_mistyped_phrase_is_refused_with_what_is_wrong(damage, message):
    words = recovery.new_phrase().split()
    damaged = damage(words)
    if damaged == words:  # swapping two equal words changes nothing
        return
    with pytest.raises(ValidationError) as refused:
        recovery.RecoveryKey.from_phrase(" ".join(damaged))
    if message:
        assert message in refused.value.message
    else:  # the checksum catches all but 1 in 256 swaps; then the key simply differs
        assert "checksum" in refused.value.message


def test_a_sealed_master_key_opens_only_with_its_phrase_and_its_own_id():
    key = recovery.RecoveryKey.from_phrase(recovery.new_phrase())
    master = os.urandom(32)
    sealed = recovery.seal(key.public, "k1", master)
    assert key.open("k1", sealed) == master
    with pytest.raises(IntegrityError):
        key.open("k2", sealed)  # moved onto another key's entry
    with pytest.raises(IntegrityError):
        recovery.RecoveryKey.from_phrase(recovery.new_phrase()).open("k1", sealed)
    assert recovery.seal(key.public, "k1", master) != sealed  # fresh ephemeral key and nonce each time


def test_rotation_seals_each_new_master_key_without_the_phrase(services):
    with pytest.raises(ConfigurationError, match="recovery key"):
        services.keys.recovery_document()
    phrase = services.keys.new_recovery_key(actor="owner")
    for _ in range(2):
        services.keys.rotate()
    document = services.keys.recovery_document()
    ring = KeyRing.from_recovery_document(document, recovery.RecoveryKey.from_phrase(phrase))
    live = open_key_store(services.paths).ring()
    assert ring.current.key == live.current.key and set(ring.keys) == set(live.keys) == {live.current_id}
    with pytest.raises(ValidationError, match="does not open this backup"):
        KeyRing.from_recovery_document(document, recovery.RecoveryKey.from_phrase(recovery.new_phrase()))


def test_a_new_recovery_key_replaces_the_old_one(services):
    first = services.keys.new_recovery_key()
    second = services.keys.new_recovery_key()
    document = services.keys.recovery_document()
    KeyRing.from_recovery_document(document, recovery.RecoveryKey.from_phrase(second))
    with pytest.raises(ValidationError):
        KeyRing.from_recovery_document(document, recovery.RecoveryKey.from_phrase(first))
    status = services.keys.status()
    second_public = recovery.RecoveryKey.from_phrase(second).public
    assert status.recovery_fingerprint == recovery.fingerprint(second_public)
    made = [e.event for e in services.audit.recent(event="recovery_key_created")]
    assert made == ["recovery_key_created"] * 2


def test_the_cli_prints_the_phrase_last_and_keeps_it_nowhere(paths):
    run = subprocess.run([sys.executable, "-m", "vaultserver.cli", "--data-dir", str(paths.root),
                          "keys", "recovery-key"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    phrase = run.stdout.strip().splitlines()[-1]
    assert recovery.check_phrase(phrase) == phrase
    status = subprocess.run([sys.executable, "-m", "vaultserver.cli", "--data-dir", str(paths.root),
                             "keys", "status"], capture_output=True, text=True, timeout=120)
    fingerprint = recovery.fingerprint(recovery.RecoveryKey.from_phrase(phrase).public)
    assert f"Recovery key:     {fingerprint}" in status.stdout
    needles = [phrase.encode(), " ".join(phrase.split()[:3]).encode(),
               recovery.RecoveryKey.from_phrase(phrase).private.private_bytes_raw()]
    for file in paths.root.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert not any(needle in data for needle in needles), f"{file} holds the recovery key"

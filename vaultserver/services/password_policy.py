"""The password policy: the rules a new password must meet, in the words every front end shows.

Kept apart from the accounts so the GUI's password field, the API's refusals and the hashing all read the
same list. The last rule is bcrypt's own limit: it reads no further than 72 bytes (and bcrypt 5 refuses longer
passwords outright), so a longer one is refused rather than silently cut.
"""

from __future__ import annotations

from collections.abc import Callable

from vaultserver.errors import ValidationError

MAX_PASSWORD_BYTES = 72


def password_bytes(password: str) -> bytes | None:
    """What bcrypt is given for `password`: its UTF-8, or None when bcrypt cannot take it (too long, or text
    with a lone surrogate, which JSON can carry but UTF-8 cannot)."""
    try:
        encoded = password.encode()
    except UnicodeEncodeError:
        return None
    return encoded if len(encoded) <= MAX_PASSWORD_BYTES else None


POLICY: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("at least 8 characters", lambda p: len(p) >= 8),
    ("an uppercase letter", lambda p: any(c.isupper() for c in p)),
    ("a lowercase letter", lambda p: any(c.islower() for c in p)),
    ("a digit", lambda p: any(c.isdigit() for c in p)),
    ("a special character", lambda p: any(not c.isalnum() for c in p)),
    (f"at most {MAX_PASSWORD_BYTES} bytes (an accented letter counts 2, an emoji 4)",
     lambda p: password_bytes(p) is not None),
)


def password_problems(password: str) -> list[str]:
    """The unmet rules, in words; empty when the password is acceptable."""
    return [rule for rule, ok in POLICY if not ok(password)]


def check_password_policy(password: str) -> None:
    """Refuse (400 VALIDATION_001, the unmet rules in `details.unmet`) what the policy does not allow."""
    if not isinstance(password, str):
        raise ValidationError("The password must be text", details={"field": "password"})
    if problems := password_problems(password):
        raise ValidationError("The password needs " + ", ".join(problems), details={"unmet": problems})

"""Channel secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`) with a key derived
from Django's SECRET_KEY by HKDF-SHA256. Keys from SECRET_KEY_FALLBACKS still open what they
sealed, so rotating SECRET_KEY (with the old one as a fallback) keeps channels working; a value
sealed under a key that is gone raises `Unsealable`, and the channel says so instead of sending.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"agent-portal-monitoring/monitors/channel-secrets/v1"


class Unsealable(Exception):
    """The sealed value was made with a SECRET_KEY this installation no longer has."""


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _keys() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(k) for k in keys])


def seal(plain: str) -> str:
    """Encrypt text; '' stays '' (no secret set)."""
    if not plain:
        return ""
    return _keys().encrypt(plain.encode()).decode()


def unseal(sealed: str) -> str:
    """Decrypt what `seal` made. Raises Unsealable when no current key opens it."""
    if not sealed:
        return ""
    try:
        return _keys().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise Unsealable("sealed with another SECRET_KEY") from None

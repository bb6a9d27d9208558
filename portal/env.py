"""Typed readers for settings that come from the environment.

Every reader fails at start-up with a message naming the variable, so a bad deployment stops
before it serves a single wrong page.
"""

import ipaddress
import os
import re
import uuid

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, not {number}")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None
    if not number > minimum:
        raise ImproperlyConfigured(f"{name} must be greater than {minimum}, not {number}")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")


def env_networks_and_hosts(name: str, default: list[str]) -> list[str]:
    """A comma list of networks (CIDR: `10.0.0.0/8`, `fd00::/8`; a bare address is a /32 or /128)
    and host names (`hooks.internal`), lowercased; anything else stops start-up naming the variable."""
    items = []
    for item in env_list(name, default):
        try:
            items.append(str(ipaddress.ip_network(item, strict=False)))
            continue
        except ValueError:
            pass
        host = item.lower().rstrip(".")
        # A last label that is not a word is an address in another spelling (127.1, 0x7f000001).
        if not _HOST_NAME.fullmatch(host) or len(host) > 253 or not host.rsplit(".", 1)[-1][0].isalpha():
            raise ImproperlyConfigured(f"{name} lists networks (10.0.0.0/8) and host names, not {item!r}")
        items.append(host)
    return items


def env_uuid(name: str, default: str) -> str:
    value = env_str(name, default)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a UUID, not {value!r}") from None


def env_identifier(name: str, default: str) -> str:
    """A ClickHouse database name: it is formatted into DDL, so only plain identifiers pass."""
    value = env_str(name, default)
    if not value.replace("_", "a").isalnum() or not value.isascii() or value[0].isdigit():
        raise ImproperlyConfigured(f"{name} must be a plain identifier (letters, digits, _), not {value!r}")
    return value

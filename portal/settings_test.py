"""Settings for the test suite: a private var/ folder (SQLite, engine data, secret) per run."""

import os
import tempfile

os.environ["PORTAL_VAR_DIR"] = tempfile.mkdtemp(prefix="apm-test-")
os.environ["CLICKHOUSE_DATA_DIR"] = os.path.join(os.environ["PORTAL_VAR_DIR"], "clickhouse")
os.environ.pop("CLICKHOUSE_HOST", None)
# Fixtures carry fixed 2023 timestamps; a TTL would drop them at insert. Retention has its own tests.
os.environ["CLICKHOUSE_TTL_DAYS"] = "0"

from portal.settings import *  # noqa: F403

# Tests settle when they mean to: every question also computes what is not settled yet.
SETTLE_FRESH_SECONDS = 0.0
# Tests read what they sent at once: no write-behind queue, which a burst of test traffic while
# the flusher drains can turn on (spans stored 0.5 s after their answer). Its own tests set it.
INGEST = {**INGEST, "WRITE_BEHIND_RATE": 0}  # noqa: F405
# The demo app: its generator feeds many tests, its commands have their own.
from portal.settings import INSTALLED_APPS  # noqa: E402 - named for mypy; the star import has it too

if "demo" not in INSTALLED_APPS:
    INSTALLED_APPS = [*INSTALLED_APPS, "demo"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from demo import gateway

CONFIG_FILE = "demo_litellm.json"  # in PORTAL_VAR_DIR
KEY_FILE = "demo_litellm_key"  # 0600: the proxy's master key, which the portal sends as LITELLM_API_KEY


class Command(BaseCommand):
    help = (
        "Write the demo gateway's LiteLLM config (mock answers for every demo model) and its master key into "
        "PORTAL_VAR_DIR; print the two paths. bin/demo starts the proxy with them."
    )

    def handle(self, *args, **options):
        var = Path(settings.VAR_DIR)
        config = var / CONFIG_FILE
        config.write_text(json.dumps(gateway.config(), indent=2))
        key = var / KEY_FILE
        if not key.exists() or not key.read_text().strip():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("sk-demo-" + secrets.token_hex(16))
        self.stdout.write(f"{config}\n{key}\n")

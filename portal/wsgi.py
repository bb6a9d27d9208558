import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

# The serving process runs the periodic jobs itself in embedded mode (BACKGROUND_JOBS=auto), since
# it alone may open the data folder; see monitoring/background.py. It starts the OTLP writer too
# (and so the spool flusher), so a spool left by a crash is drained after a restart even before
# the first new span arrives (monitoring/ingest/batcher.py).
from django.conf import settings  # noqa: E402

from monitoring import background  # noqa: E402
from monitoring.ingest import batcher  # noqa: E402

background.start()
if settings.INGEST["START_ON_LOAD"]:
    batcher.writer()

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

# The serving process runs the periodic jobs itself in embedded mode (BACKGROUND_JOBS=auto), since
# it alone may open the data folder; see monitoring/background.py.
from monitoring import background  # noqa: E402

background.start()

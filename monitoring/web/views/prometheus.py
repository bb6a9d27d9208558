"""GET /metrics: Prometheus exposition (django-prometheus' request/DB metrics + monitoring.prometheus).

Not for browsers or the internet: answered only to METRICS_ALLOWED_NETWORKS (loopback by default;
compose adds its private network, and nginx refuses /metrics from outside), or to a scraper that
sends ``Authorization: Bearer $METRICS_TOKEN``. Anyone else gets a 404, as for an unknown URL.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import Http404
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView

from monitoring import prometheus  # noqa: F401 - registers the portal's own metrics
from monitoring.access import guarded_by


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


@guarded_by("network")
@require_GET
def prometheus_metrics(request):
    if not _allowed(request):
        raise Http404
    return ExportToDjangoView(request)

from django.urls import path

from monitoring.views import api, dashboard, ingest

app_name = "monitoring"

urlpatterns = [
    path("v1/traces", ingest.otlp_traces, name="otlp-traces"),
    path("admin/monitoring", dashboard.home),
    path("admin/monitoring/", dashboard.home, name="home"),
    path("admin/monitoring/<uuid:project_id>/overview/", dashboard.overview, name="overview"),
    path("api/v1/projects/<str:project_id>/overview", api.overview, name="api-overview"),
]

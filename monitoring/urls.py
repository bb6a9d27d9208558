from django.urls import include, path

from monitoring.ingest import receiver
from monitoring.web.views import (
    analytics,
    api,
    dashboard,
    health,
    maintenance,
    preferences,
    replay,
    runs,
    saved_views,
    tokens,
    traces,
)

app_name = "monitoring"

urlpatterns = [
    path("v1/traces", receiver.otlp_traces, name="otlp-traces"),
    path("v1/logs", receiver.otlp_logs, name="otlp-logs"),
    path("", dashboard.home),  # the site's front door is the dashboard (or the login page)
    path("admin/monitoring", dashboard.home),
    path("admin/monitoring/", dashboard.home, name="home"),
    path("admin/monitoring/health", health.health, name="health"),
    path("admin/monitoring/preferences", preferences.preferences_view, name="preferences"),
    path("admin/monitoring/tokens", tokens.tokens, name="tokens"),
    path("admin/monitoring/tokens/<int:pk>/revoke", tokens.revoke, name="token-revoke"),
    path("admin/monitoring/maintenance", maintenance.maintenance_view, name="maintenance"),
    path("admin/monitoring/<uuid:project_id>/overview/", dashboard.overview, name="overview"),
    path("admin/monitoring/<uuid:project_id>/analytics/", analytics.analytics, name="analytics"),
    path("admin/monitoring/<uuid:project_id>/analytics/<str:part>", analytics.analytics_part, name="analytics-part"),
    path("admin/monitoring/<uuid:project_id>/traces/", traces.traces, name="traces"),
    path("admin/monitoring/<uuid:project_id>/traces/export.<str:fmt>", traces.export, name="traces-export"),
    # Before <trace_id>: "sessions" and "users" are not trace ids. One of them: ?session= / ?user=.
    path("admin/monitoring/<uuid:project_id>/traces/sessions/", runs.sessions, name="sessions"),
    path("admin/monitoring/<uuid:project_id>/traces/users/", runs.users, name="users"),
    path("admin/monitoring/<uuid:project_id>/traces/<str:trace_id>/", traces.trace_detail, name="trace"),
    path("admin/monitoring/<uuid:project_id>/traces/<str:trace_id>/spans", traces.trace_spans, name="trace-spans"),
    path("admin/monitoring/<uuid:project_id>/attributes", dashboard.attribute_options, name="attribute-options"),
    path("admin/monitoring/<uuid:project_id>/views/save", saved_views.save, name="view-save"),
    path("admin/monitoring/<uuid:project_id>/views/<int:view_id>/delete", saved_views.delete, name="view-delete"),
    path(
        "admin/monitoring/<uuid:project_id>/views/<int:view_id>/default", saved_views.make_default, name="view-default"
    ),
    path("admin/monitoring/<uuid:project_id>/replay/", replay.replay, name="replay"),
    path("admin/monitoring/<uuid:project_id>/replay/compare/", replay.compare, name="replay-compare"),
    path("admin/monitoring/<uuid:project_id>/replay/rerun", replay.rerun, name="replay-rerun"),
    path("api/v1/projects/<str:project_id>/overview", api.overview, name="api-overview"),
    path("api/v1/projects/<str:project_id>/attributes", api.attributes, name="api-attributes"),
    path("api/v1/projects/<str:project_id>/views", saved_views.api_views, name="api-views"),
    path("api/v1/projects/<str:project_id>/views/<int:view_id>", saved_views.api_view, name="api-view"),
    path("api/v1/projects/<str:project_id>/timeseries", analytics.api_timeseries, name="api-timeseries"),
    path("api/v1/projects/<str:project_id>/traces", traces.api_traces, name="api-traces"),
    path("api/v1/projects/<str:project_id>/sessions", runs.api_sessions, name="api-sessions"),
    path("api/v1/projects/<str:project_id>/users", runs.api_users, name="api-users"),
    # Before the quality app's scores/<score_id>: "summary" is not a score id.
    path("api/v1/projects/<str:project_id>/scores/summary", analytics.api_score_summary, name="api-score-summary"),
    path("api/v1/projects/<str:project_id>/traces/<str:trace_id>", traces.api_trace, name="api-trace"),
    path(
        "api/v1/projects/<str:project_id>/traces/<str:trace_id>/spans/<str:span_id>/<str:part>",
        traces.api_span_part,
        name="api-span-part",
    ),
    path("", include("monitoring.monitors.urls")),
    path("", include("monitoring.quality.urls")),
]

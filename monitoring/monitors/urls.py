from django.urls import path

from monitoring.monitors import api, views

app_name = "monitors"

_P = "admin/monitoring/<uuid:project_id>/monitors/"

urlpatterns = [
    path(_P, views.monitor_list, name="list"),
    path(_P + "new", views.monitor_create, name="new"),
    path(_P + "<int:pk>/", views.monitor_detail, name="detail"),
    path(_P + "<int:pk>/edit", views.monitor_edit, name="edit"),
    path(_P + "<int:pk>/delete", views.monitor_delete, name="delete"),
    path(_P + "<int:pk>/evaluate", views.monitor_evaluate, name="evaluate"),
    path(_P + "<int:pk>/mute", views.monitor_mute, name="mute"),
    path(_P + "<int:pk>/history", views.monitor_history, name="history"),
    path(_P + "<int:pk>/alerts/<int:alert_id>/acknowledge", views.alert_acknowledge, name="acknowledge"),
    path(_P + "channels/", views.channel_list, name="channels"),
    path(_P + "channels/new", views.channel_form, name="channel-new"),
    path(_P + "channels/<int:pk>/edit", views.channel_form, name="channel-edit"),
    path(_P + "channels/<int:pk>/delete", views.channel_delete, name="channel-delete"),
    path(_P + "channels/<int:pk>/test", views.channel_test, name="channel-test"),
    path("api/v1/projects/<str:project_id>/monitors", api.monitors, name="api-list"),
    path("api/v1/projects/<str:project_id>/monitors/<int:pk>", api.monitor, name="api-detail"),
]

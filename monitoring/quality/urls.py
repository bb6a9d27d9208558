from django.urls import path

from monitoring.quality import api, views

app_name = "quality"

_P = "admin/monitoring/<uuid:project_id>/"

urlpatterns = [
    path(_P + "scores/", views.give_score, name="give"),
    path(_P + "scores/configs/", views.configs, name="configs"),
    path(_P + "scores/configs/<int:pk>/delete", views.config_delete, name="config-delete"),
    path("api/v1/projects/<str:project_id>/scores", api.scores, name="api-scores"),
    path("api/v1/projects/<str:project_id>/scores/<str:score_id>", api.score, name="api-score"),
]

from django.urls import path

from monitoring.quality import api, judge_views, views

app_name = "quality"

_P = "admin/monitoring/<uuid:project_id>/"

urlpatterns = [
    path(_P + "scores/", views.give_score, name="give"),
    path(_P + "scores/configs/", views.configs, name="configs"),
    path(_P + "scores/configs/<int:pk>/delete", views.config_delete, name="config-delete"),
    path(_P + "judges/", judge_views.judges_page, name="judges"),
    path(_P + "judges/<int:pk>/", judge_views.judge_page, name="judge"),
    path("api/v1/projects/<str:project_id>/scores", api.scores, name="api-scores"),
    path("api/v1/projects/<str:project_id>/scores/<str:score_id>", api.score, name="api-score"),
]

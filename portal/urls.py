from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Ours first: /admin/monitoring must not fall into Django admin's own /admin/ catch-all.
    path("", include("monitoring.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from monitoring.web.views.prometheus import prometheus_metrics

urlpatterns = [
    # Ours first: /admin/monitoring must not fall into Django admin's own /admin/ catch-all.
    path("", include("monitoring.urls")),
    # Log in and out only: no password-reset pages (no mail is configured; admins reset passwords).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("metrics", prometheus_metrics, name="prometheus-metrics"),
    # Browsers ask for /favicon.ico on pages that name no icon (and some always do): the portal's icon.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("monitoring/favicon.svg"), permanent=True)),
]

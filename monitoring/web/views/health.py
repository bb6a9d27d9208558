from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from monitoring import access
from monitoring.web import health as checks


@access.guarded_by("login")
@login_required
@require_GET
def health(request):
    projects = list(access.projects_for(request.user))
    results = checks.run_checks([str(p.id) for p in projects], staff=request.user.is_staff)
    status = 200 if all(c.ok for c in results) else 503
    return render(request, "monitoring/health.html", {"checks": results, "projects": projects}, status=status)

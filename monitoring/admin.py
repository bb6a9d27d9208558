from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin, messages

from monitoring.models import ApiToken, IngestKey, Membership, ModelPrice, Project, UserPreference


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


class ModelPriceInline(admin.TabularInline):
    model = ModelPrice
    extra = 0


class IngestKeyInline(admin.TabularInline):
    model = IngestKey
    extra = 0
    fields = ["name", "prefix", "created", "last_used", "revoked"]
    readonly_fields = ["prefix", "created", "last_used"]
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued with the "Issue an ingest key" action, which shows the secret once


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created"]
    search_fields = ["name", "id"]
    readonly_fields = ["id"]
    inlines = [MembershipInline, ModelPriceInline, IngestKeyInline]
    actions = ["issue_ingest_key"]

    @admin.action(description="Issue an ingest key (shown once)")
    def issue_ingest_key(self, request, queryset):
        for project in queryset:
            _, secret = IngestKey.issue(project, name=f"issued by {request.user}")
            self.message_user(
                request,
                f"Ingest key for {project.name} ({project.id}): {secret} (copy it now: it is not stored)",
                messages.WARNING,
            )


@admin.register(IngestKey)
class IngestKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "project", "name", "created", "last_used", "revoked"]
    list_filter = ["project"]
    fields = ["project", "name", "prefix", "created", "last_used", "revoked"]
    readonly_fields = ["project", "prefix", "created", "last_used"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset.active():
            key.revoke()


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created", "last_used", "revoked"]
    fields = ["user", "name", "prefix", "created", "last_used", "revoked"]
    readonly_fields = ["user", "prefix", "created", "last_used"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.active():
            token.revoke()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project"]
    autocomplete_fields = ["user", "project"]


@admin.register(UserPreference)
class UserPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "language", "time_zone", "time_zone_chosen"]
    list_filter = ["language", "time_zone_chosen"]
    search_fields = ["user__username", "time_zone"]
    autocomplete_fields = ["user"]


class StaffMayView:
    """Logins are the operators' to watch (issue 22): every active staff user may read django-axes'
    lists (failures with address and time, the counts behind a lock, successful logins), not only
    those granted the models' permissions; lifting a lock (deleting attempts) still needs them."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff


for _model, _admin in (
    (AccessFailureLog, AccessFailureLogAdmin),
    (AccessAttempt, AccessAttemptAdmin),
    (AccessLog, AccessLogAdmin),
):
    if admin.site.is_registered(_model):  # django-axes registers them (AXES_ENABLE_ADMIN)
        admin.site.unregister(_model)
        admin.site.register(_model, type(_admin.__name__, (StaffMayView, _admin), {}))

"""Django's side of the product: projects, who may see them, and the keys that write and read them;
and the leases that let one process at a time run a job per database (the settler).

Spans live in ClickHouse; a project's UUID is the `ResourceAttributes['project_id']` of its spans.
Keys are stored as SHA-256 digests: the plain key is shown once, when it is made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

# The default agent step span names (README, Traces > Agent steps); each project can change its list.
DEFAULT_AGENT_SPAN_NAMES = ("text2sql", "analyze", "generate", "execute")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def project_pk(value) -> uuid.UUID | None:
    """A ProjectId read from ClickHouse as a Project primary key; None when it cannot name one.

    A collector writes whatever `project_id` the sender put in its resource (a name, a typo, ""):
    looked up as it is, Django raises ValidationError for a value that is not a UUID."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        pk = uuid.UUID(str(value))
    except ValueError:
        return None
    return pk if str(pk) == value else None  # as the portal writes it: pages match ProjectId exactly


class Project(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    created = models.DateTimeField(default=timezone.now)
    agent_span_names = models.CharField(
        max_length=1000,
        default=",".join(DEFAULT_AGENT_SPAN_NAMES),
        blank=True,
        help_text="Comma-separated span names that are agent steps (beside the SDKs' own agent markers).",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="projects")
    # The settled facts follow the project's own rules: its prices, its agent step names, and the
    # public price table's version. A change bumps `facts_version`; the re-settle job
    # (monitoring/semantics/resettle.py) recomputes the project's facts and records what it applied.
    facts_version = models.PositiveIntegerField(default=0, editable=False)
    facts_settled = models.PositiveIntegerField(default=0, editable=False)
    facts_prices = models.CharField(max_length=40, default="", editable=False)  # set when made (resettle.py)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def agent_names(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.agent_span_names.split(",") if n.strip())


class Membership(models.Model):
    VIEWER, ADMIN = "viewer", "admin"
    ROLES = [(VIEWER, "Viewer"), (ADMIN, "Admin")]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=ROLES, default=VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class KeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked__isnull=True)


class _HashedKey(models.Model):
    """A secret presented as `Authorization: Bearer <key>`; only its digest and a short prefix are kept."""

    PREFIX = ""

    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.DateTimeField(null=True, blank=True)

    objects = KeyQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def new_secret(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    @classmethod
    def find(cls, key: str):
        """The active key for a presented secret, or None."""
        if not key or not key.startswith(cls.PREFIX):
            return None
        return cls.objects.active().filter(digest=_digest(key)).first()

    def set_secret(self, key: str) -> None:
        self.prefix = key[: len(self.PREFIX) + 6]
        self.digest = _digest(key)

    def revoke(self) -> None:
        self.revoked = timezone.now()
        self.save(update_fields=["revoked"])

    def touch(self) -> None:
        # At most once a minute: a busy exporter must not turn every batch into a DB write.
        now = timezone.now()
        if self.last_used is None or (now - self.last_used).total_seconds() > 60:
            type(self).objects.filter(pk=self.pk).update(last_used=now)
            self.last_used = now


class IngestKey(_HashedKey):
    """Lets an exporter write spans into one project, and only that project."""

    PREFIX = "apm_ingest_"
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ingest_keys")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.project})"

    @classmethod
    def issue(cls, project: Project, name: str = "") -> tuple[IngestKey, str]:
        secret = cls.new_secret()
        key = cls(project=project, name=name)
        key.set_secret(secret)
        key.save()
        return key, secret


class ApiToken(_HashedKey):
    """A personal token for the read API: it sees what its user sees."""

    PREFIX = "apm_token_"
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user, name: str = "") -> tuple[ApiToken, str]:
        secret = cls.new_secret()
        token = cls(user=user, name=name)
        token.set_secret(secret)
        token.save()
        return token, secret


class ModelPrice(models.Model):
    """A project's own price for a model the public price table does not know (self-hosted ones)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_prices")
    model = models.CharField(max_length=200, help_text="as the spans name it, e.g. qwen-235b")
    input_per_million = models.DecimalField(max_digits=12, decimal_places=6, help_text="USD per 1M input tokens")
    output_per_million = models.DecimalField(max_digits=12, decimal_places=6, help_text="USD per 1M output tokens")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "model"], name="one_price_per_model")]

    def __str__(self) -> str:
        return f"{self.model} in {self.project}"


class UserPreference(models.Model):
    """How one person reads the dashboard: language and time zone. Empty means "not chosen": the
    browser's Accept-Language, and the zone the browser reports (else settings.PORTAL_TIME_ZONE)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    language = models.CharField(max_length=10, blank=True, choices=settings.LANGUAGES)
    time_zone = models.CharField(max_length=64, blank=True, help_text="IANA name, e.g. Asia/Seoul")
    # A zone the person picked is kept; one the browser reported follows the browser when it moves.
    time_zone_chosen = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.user}: {self.language or 'browser language'}, {self.time_zone or 'browser zone'}"


class Lease(models.Model):
    """A job that must run in one process at a time per database (the settler) runs only in the
    process holding its lease; the holder renews it while it works, and a lease not renewed for its
    length (the holder was killed, its host lost) is free for another process to take.

    Times are the database's clock (`Now()`), so processes on hosts whose clocks differ agree.
    Taking and renewing are one conditional UPDATE each: of processes asking at once exactly one
    matches the row (PostgreSQL: the row lock, then the condition checked again on the row as the
    winner left it; SQLite: the database's write lock). The pattern: Gray & Cheriton, "Leases"
    (SOSP 1989); tests/test_postgres.py contends on a real PostgreSQL."""

    name = models.CharField(max_length=100, primary_key=True)  # the job's, e.g. "settle"
    holder = models.CharField(max_length=200, blank=True)  # host:pid:random of the process
    acquired_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'free'}"

    @classmethod
    def take(cls, name: str, holder: str, seconds: float) -> bool:
        """Renew `name` for `holder`, or take it when it is free or expired, for `seconds` from now
        (database clock). True when `holder` holds it afterwards."""
        until = Now() + dt.timedelta(seconds=seconds)
        if cls.objects.filter(name=name, holder=holder, expires_at__gt=Now()).update(expires_at=until):
            return True
        free = models.Q(expires_at__isnull=True) | models.Q(expires_at__lte=Now())
        if cls.objects.filter(free, name=name).update(holder=holder, acquired_at=Now(), expires_at=until):
            return True
        if cls.objects.filter(name=name).exists():
            return False
        Lease.objects.bulk_create([Lease(name=name)], ignore_conflicts=True)  # the first ask: the row
        return bool(cls.objects.filter(free, name=name).update(holder=holder, acquired_at=Now(), expires_at=until))

    @classmethod
    def release(cls, holder: str, name: str | None = None) -> int:
        """Give up `holder`'s leases (only `name` when given) at once; how many it held."""
        held = cls.objects.filter(holder=holder, expires_at__gt=Now())
        if name is not None:
            held = held.filter(name=name)
        return held.update(holder="", expires_at=None)


# --- what changes the settled facts --------------------------------------------------------------


def _bump(project_id) -> None:
    Project.objects.filter(pk=project_id).update(facts_version=models.F("facts_version") + 1)


@receiver([post_save, post_delete], sender=ModelPrice)
def _prices_changed(sender, instance, **kwargs):
    _bump(instance.project_id)


@receiver(pre_save, sender=Project)
def _agent_names_changed(sender, instance, **kwargs):
    if instance._state.adding:
        return
    before = Project.objects.filter(pk=instance.pk).values_list("agent_span_names", flat=True).first()
    if before is not None and before != instance.agent_span_names:
        instance.facts_version += 1


class SavedView(models.Model):
    """A tab with its filters, window, columns and sort, named: `query` is the page's query string
    (what the filter bar and the list put in the URL). Personal, or shared with the project's members."""

    TABS = ("overview", "analytics", "traces")
    MAX_QUERY = 2000
    MAX_NAME = 100

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="saved_views")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=MAX_NAME)
    tab = models.CharField(max_length=20, choices=[(t, t) for t in TABS])
    query = models.CharField(max_length=MAX_QUERY, blank=True)
    shared = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["project", "tab"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.tab}, {'shared' if self.shared else 'personal'})"


class DefaultView(models.Model):
    """The view a person's tab opens on when its URL names no filter (their own or a shared one)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="default_views")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="default_views")
    tab = models.CharField(max_length=20)
    view = models.ForeignKey(SavedView, on_delete=models.CASCADE, related_name="defaults")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project", "tab"], name="one_default_view_per_tab")]

    def __str__(self) -> str:
        return f"{self.user}'s {self.tab}: {self.view_id}"

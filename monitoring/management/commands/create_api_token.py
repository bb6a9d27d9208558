from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from monitoring.models import ApiToken


class Command(BaseCommand):
    help = "Issue a personal API token for USERNAME and print it (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="a label to recognise the token by")

    def handle(self, username, name="", **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        _, secret = ApiToken.issue(user, name=name)
        self.stdout.write(secret)

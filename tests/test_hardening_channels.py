"""Issue 22, items 1 and 6: a monitor channel is a request the server makes where a project admin
aims it. A real listener on 127.0.0.1 proves that no spelling of an internal address reaches it —
not when the channel is saved, not on "Send test", not when a monitor fires — that no redirect is
followed, that the operator's allow-list (MONITOR_CHANNEL_ALLOWED_NETWORKS) lets one through with
the name kept for Host, SNI and the certificate, and that members read one neutral failure text
while staff read the detail. Span text reaches Slack escaped."""

import datetime as dt
import json
import ssl

import pytest
from monitor_data import llm_call
from otlp import send
from receivers import http_receiver, smtp_server

from monitoring.models import Membership
from monitoring.monitors import delivery, evaluation
from monitoring.monitors.models import Channel, Delivery, Monitor

pytestmark = pytest.mark.django_db

# Every spelling of the listener's own address (127.0.0.1), and a name that resolves to it.
SPELLINGS = [
    "http://127.0.0.1:{port}/hook",
    "http://127.1:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://0x7f000001:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://0.0.0.0:{port}/hook",
    " http://127.0.0.1:{port}/hook",
    "HTTP://127.0.0.1:{port}/hook",
    "https://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
]
# Other addresses inside, no listener needed: what the form says of them.
INSIDE = [
    "http://169.254.169.254/latest/meta-data/",  # link-local: the cloud's instance metadata
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # shared address space (RFC 6598)
    "http://224.0.0.1/hook",  # multicast
    "http://240.0.0.1/hook",  # reserved
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",  # ULA
    "http://[ff02::1]/hook",
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::]/hook",  # 6to4 of 169.254.169.254
]


@pytest.fixture
def dave(django_user_model, project):
    """Staff (is_staff), and an admin of alice's project: reads the detail."""
    user = django_user_model.objects.create_user("dave", password="dave-pass-123", is_staff=True)
    Membership.objects.create(project=project, user=user, role=Membership.ADMIN)
    return user


def stored_channel(project, url: str, kind=Channel.WEBHOOK, name="hook") -> Channel:
    """A channel whose URL was stored before this rule, or whose name resolves elsewhere now."""
    channel = Channel(project=project, name=name, kind=kind)
    channel.set_url(url)
    channel.save()
    return channel


def fire(client, project, ingest_key, *channels, group_by="user", **span) -> Monitor:
    m = Monitor.objects.create(
        project=project, name="Spend", metric="cost_usd", group_by=group_by, threshold=1.0, window_minutes=60
    )
    m.channels.add(*channels)
    send(client, ingest_key, llm_call(**({"user": "ann", "cost": 2.5} | span)))
    evaluation.run_once()
    return m


def channels_page(client, project) -> str:
    return client.get(f"/admin/monitoring/{project.id}/monitors/channels/").content.decode()


# --- saved, "Send test", fired: nothing reaches the listener ----------------------------------------


@pytest.mark.parametrize("spelling", SPELLINGS + INSIDE)
def test_the_channel_form_refuses_every_internal_address(client, alice, project, spelling):
    client.force_login(alice)
    with http_receiver() as listener:
        url = spelling.format(port=listener.port)
        r = client.post(
            f"/admin/monitoring/{project.id}/monitors/channels/new",
            {"name": "inside", "kind": "webhook", "url": url, "language": "en"},
        )
    assert r.status_code == 400
    page = r.content.decode()
    assert "internal address" in page and "MONITOR_CHANNEL_ALLOWED_NETWORKS" in page
    assert "127.0.0.1" not in page.replace(url.strip(), "")  # what a name resolves to is not echoed
    assert not Channel.objects.exists() and listener.received == []


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_send_test_reaches_no_internal_address(client, alice, project, spelling):
    client.force_login(alice)
    with http_receiver() as listener:
        channel = stored_channel(project, spelling.format(port=listener.port))
        r = client.post(f"/admin/monitoring/{project.id}/monitors/channels/{channel.pk}/test", follow=True)
    assert listener.received == []
    channel.refresh_from_db()
    assert channel.last_error.startswith("refused:") and "internal address" in channel.last_error
    assert "The test to “hook” failed: delivery failed" in r.content.decode()


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_firing_monitor_delivers_to_no_internal_address(client, project, ingest_key, spelling):
    with http_receiver() as listener:
        url = spelling.format(port=listener.port)
        hook = stored_channel(project, url)
        slack = stored_channel(project, url, kind=Channel.SLACK, name="slack")
        fire(client, project, ingest_key, hook, slack)
        delivery.deliver_due(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))  # and its retry
    assert listener.received == []
    items = list(Delivery.objects.all())
    assert len(items) == 2
    assert all(d.attempts == 2 and d.last_error.startswith("refused:") for d in items), [d.last_error for d in items]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failure_never_followed(client, project, ingest_key, settings, status):
    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the redirecting receiver may be reached
    with http_receiver() as target, http_receiver(status=status, location="") as redirector:
        redirector.location = target.url + "/latest/meta-data/"
        channel = stored_channel(project, redirector.url + "/hook")
        error = delivery.send_test(channel)
        fire(client, project, ingest_key, channel)
    assert target.received == []  # neither the test nor the monitor's delivery went on
    assert [r.path for r in redirector.received] == ["/hook", "/hook"]
    assert error.startswith(f"HTTP {status}") and "redirects are not followed" in error
    assert Delivery.objects.get().last_error.startswith(f"HTTP {status}")


# --- the operator's allow-list --------------------------------------------------------------------


def test_the_allow_list_lets_an_internal_receiver_through(client, alice, project, ingest_key, settings):
    with http_receiver() as listener:
        url = f"HTTP://127.0.0.1:{listener.port}/hook"  # the scheme is case-insensitive
        settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["10.0.0.0/8", "hooks.internal"]  # not this one
        assert "internal address" in delivery.send_test(stored_channel(project, url, name="before"))
        assert listener.received == []

        settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.0/8"]
        client.force_login(alice)
        r = client.post(
            f"/admin/monitoring/{project.id}/monitors/channels/new",
            {"name": "local", "kind": "slack", "url": url, "language": "en"},
        )
        assert r.status_code == 302
        channel = Channel.objects.get(name="local")
        assert delivery.send_test(channel) == ""
        fire(client, project, ingest_key, channel)
    assert [r.path for r in listener.received] == ["/hook", "/hook"]
    assert json.loads(listener.received[1].body)["text"].startswith("Firing: Spend")
    assert Delivery.objects.get().state == Delivery.SENT


def test_an_allowed_host_name_keeps_its_name_in_the_host_header(project, settings):
    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["LOCALHOST."]  # names compare as DNS does
    with http_receiver() as listener:
        assert delivery.send_test(stored_channel(project, f"http://localhost:{listener.port}/a?b=1")) == ""
        # the name allows itself, not the address it resolves to in another spelling
        assert "internal address" in delivery.send_test(stored_channel(project, f"http://127.1:{listener.port}/"))
    [got] = listener.received
    assert got.path == "/a?b=1" and got.headers["host"] == f"localhost:{listener.port}"


def _certificate_authority(tmp_path):
    """A CA, and a server certificate it signs for the name `localhost` only (no IP address)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject, issuer, key, signer, ca: bool, names=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("test CA", "test CA", ca_key, ca_key, True)
    leaf = cert("localhost", "test CA", leaf_key, ca_key, False, ["localhost"])
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    return tmp_path / "ca.pem", server


def test_https_connects_to_the_judged_address_and_checks_the_certificate_on_the_name(
    project, settings, tmp_path, monkeypatch
):
    ca_file, server_tls = _certificate_authority(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # OpenSSL's default trust, read per context
    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with http_receiver(tls=server_tls) as listener:
        assert delivery.send_test(stored_channel(project, f"https://localhost:{listener.port}/hook")) == ""
        # the same listener by its address: the certificate names localhost only, so TLS refuses
        by_address = delivery.send_test(stored_channel(project, f"https://127.0.0.1:{listener.port}/hook"))
    assert by_address == "unreachable: hostname '127.0.0.1' doesn't match 'localhost'"
    [got] = listener.received
    assert got.headers["host"] == f"localhost:{listener.port}" and listener.sni[0] == "localhost"


# --- who reads what -------------------------------------------------------------------------------


def test_members_read_a_neutral_text_and_staff_the_detail(client, alice, dave, project, ingest_key, settings):
    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.1"]
    with http_receiver(status=403) as listener:
        channel = stored_channel(project, listener.url + "/hook", name="pager")
        m = fire(client, project, ingest_key, channel)
        test_url = f"/admin/monitoring/{project.id}/monitors/channels/{channel.pk}/test"
        pages = {
            "channels": f"/admin/monitoring/{project.id}/monitors/channels/",
            "monitors": f"/admin/monitoring/{project.id}/monitors/",
            "monitor": f"/admin/monitoring/{project.id}/monitors/{m.pk}/",
            "health": "/admin/monitoring/health",
        }
        seen = {}
        for user in (alice, dave):
            client.force_login(user)
            seen[user.username] = {name: client.get(url).content.decode() for name, url in pages.items()}
            seen[user.username]["send test"] = client.post(test_url, follow=True).content.decode()
    assert len(listener.received) == 3  # the monitor's delivery and two tests: all answered 403
    for name, page in seen["alice"].items():
        assert "delivery failed" in page, name
        assert "403" not in page and "Forbidden" not in page, name
    assert "The last delivery failed." in seen["alice"]["health"]
    for name, page in seen["dave"].items():
        assert "HTTP 403 Forbidden" in page, name


def test_staff_read_why_an_address_was_refused_members_do_not(client, alice, dave, project):
    channel = stored_channel(project, "http://127.1:9/hook", name="pager")
    test_url = f"/admin/monitoring/{project.id}/monitors/channels/{channel.pk}/test"
    client.force_login(alice)
    member = [client.post(test_url, follow=True).content.decode(), channels_page(client, project)]
    client.force_login(dave)
    staff = [client.post(test_url, follow=True).content.decode(), channels_page(client, project)]
    for page in member:
        assert "delivery failed" in page and "refused" not in page and "127.0.0.1" not in page
    for page in staff:
        assert "refused: 127.1 → 127.0.0.1 is an internal address (loopback)" in page


# --- span text in every channel (item 6) ------------------------------------------------------------

EVIL = "<!channel> <http://evil.example|click>"


def test_span_text_reaches_slack_escaped_and_other_channels_as_data(client, project, ingest_key, settings):
    settings.MONITOR_CHANNEL_ALLOWED_NETWORKS = ["127.0.0.1"]
    with http_receiver() as slack_rx, http_receiver() as hook_rx, smtp_server() as (port, inbox):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        slack = stored_channel(project, slack_rx.url + "/slack", kind=Channel.SLACK, name="slack")
        hook = stored_channel(project, hook_rx.url + "/hook", name="hook")
        mail = Channel.objects.create(project=project, name="mail", kind=Channel.EMAIL, recipients="ops@example.com")
        fire(client, project, ingest_key, slack, hook, mail, group_by="model", model=EVIL)
    body = json.loads(slack_rx.received[0].body)
    texts = [body["text"]]
    for block in body["blocks"]:
        texts += [b["text"] for b in [block.get("text") or {}, *block.get("fields", [])] if b.get("type") == "mrkdwn"]
    assert "&lt;!channel&gt; &lt;http://evil.example|click&gt;" in body["text"]
    assert any("&lt;!channel&gt;" in t for t in texts[1:])  # the summary block names the model too
    for text in texts:
        assert "<" not in text and ">" not in text, text
    assert json.loads(hook_rx.received[0].body)["group"] == EVIL  # JSON carries it as data
    [message] = inbox
    assert message.get_content_type() == "text/plain" and not message.is_multipart()  # no HTML part
    assert EVIL in message.get_content()


# --- the setting itself ---------------------------------------------------------------------------


def test_the_allowed_networks_setting_is_parsed_and_checked(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from portal.env import env_networks_and_hosts

    monkeypatch.setenv("X_ALLOWED", " 10.0.0.0/8, 192.168.1.7 , fd00::/8, Hooks.Internal. ")
    assert env_networks_and_hosts("X_ALLOWED", []) == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "hooks.internal"]
    for bad in ("127.1", "0x7f000001", "10.0.0.0/33", "http://hooks.internal", "a b"):
        monkeypatch.setenv("X_ALLOWED", bad)
        with pytest.raises(ImproperlyConfigured, match="X_ALLOWED"):
            env_networks_and_hosts("X_ALLOWED", [])

"""A little Internet on loopback: a DNS server, MX hosts, an internal relay, a gateway."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from servers import DnsServer, SmtpSink, ThrowawayCA, free_port, self_signed_server_context
from support import PASSWORD

from app import clock
from app.delivery import runner
from app.domain import ingest
from app.domain.passwords import hash_password
from app.extensions import db
from app.models import Message, OutboundItem, Policy, QueueState, User
from app.smtp import ingress


@dataclass
class Network:
    """DNS plus SMTP sinks; every MX host listens on the one delivery port."""

    dns: DnsServer
    ca: ThrowawayCA
    port: int
    sinks: list[SmtpSink] = field(default_factory=list)
    _next_address: int = 2

    def mx(self, domain: str, *, name: str | None = None, tls: str | None = None,
           preference: int = 10, require_tls: bool = False) -> SmtpSink:
        """A mail server for ``domain``: tls None (no STARTTLS), "valid" or "self-signed"."""
        name = name or f"mx{self._next_address}.{domain}"
        address = f"127.0.0.{self._next_address}"
        self._next_address += 1
        context = {None: None, "valid": lambda: self.ca.server_context(name),
                   "self-signed": lambda: self_signed_server_context(name)}[tls]
        sink = SmtpSink(tls_context=context() if context else None, require_tls=require_tls,
                        host=address, port=self.port).start()
        self.sinks.append(sink)
        self.dns.add_mx(domain, preference, name)
        self.dns.add_a(name, address)
        return sink


@pytest.fixture
def network(tmp_path):
    dns = DnsServer().start()
    net = Network(dns=dns, ca=ThrowawayCA(), port=free_port())
    try:
        yield net
    finally:
        for sink in net.sinks:
            sink.stop()
        dns.stop()


@pytest.fixture
def relay():
    """The tenant's internal mail server."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def gateway(app, network, relay, make_tenant, make_user, make_ccm_sender, tmp_path):
    """A configured gateway: tenant acme (acme.test) delivering by MX on the loopback net."""
    app.config.update(
        OUTBOUND="mx",
        MX_ALLOWED_NETWORKS="127.0.0.0/8",  # the loopback net's MX hosts
        INTERNAL_RELAY=f"smtp://127.0.0.1:{relay.port}",
        DNS_SERVERS=network.dns.address,
        SMTP_DELIVERY_PORT=network.port,
        TLS_CA_FILE=str(network.ca.ca_file(tmp_path)),
        HELO_NAME="gateway.acme.test",
        SMTP_TIMEOUT=5,
    )
    tenant = make_tenant("acme", domains=["acme.test"])
    make_ccm_sender(tenant, "alice@acme.test")
    make_user(tenant, "bob@acme.test", role="internal")
    return Gateway(tenant=tenant, relay=relay, network=network)


@dataclass
class Gateway:
    tenant: object
    relay: SmtpSink
    network: Network

    def policy(self, **values) -> Policy:
        values.setdefault("position", len(self.tenant.policies))
        policy = Policy(tenant=self.tenant, **values)
        db.session.add(policy)
        db.session.commit()
        return policy

    def send(self, raw: bytes | str, rcpts: list[str], mail_from: str = "alice@acme.test",
             **kwargs):
        """The `ccm send` path: receive and commit, as the ingress does before 250."""
        if isinstance(raw, str):
            raw = raw.replace("\n", "\r\n").encode()
        message = ingest.receive(raw, mail_from, rcpts, **kwargs)
        db.session.commit()
        return message

    def run_queue(self) -> None:
        while runner.run_due():
            pass

    def account(self, email: str) -> User | None:
        return db.session.query(User).filter_by(tenant_id=self.tenant.id, email=email).first()

    def latest(self) -> Message | None:
        """The message received last, read afresh."""
        db.session.expire_all()
        return db.session.query(Message).order_by(Message.id.desc()).first()

    def make_due(self) -> None:
        """Pretend the back-off has passed: every pending item is due now."""
        for item in db.session.query(OutboundItem).filter_by(state=QueueState.PENDING):
            item.next_attempt_at = clock.utcnow() - timedelta(seconds=1)
        db.session.commit()


@pytest.fixture
def signed_in(gateway, auth):
    """``signed_in(email)``: the portal account of ``email`` at acme (which receiving mail
    created), given PASSWORD and signed in with the test's client; returns the user."""
    def sign_in(email: str) -> User:
        user = gateway.account(email)
        user.password_hash = hash_password(PASSWORD)
        user.must_change_password = False
        db.session.commit()
        auth.sign_in(email, slug="acme")
        return user
    return sign_in


@pytest.fixture
def ingress_server(app):
    """Connect to the real SMTP ingress, started at the first connection with the
    configuration as the test left it."""
    controllers, clients = [], []

    def connect() -> smtplib.SMTP:
        if not controllers:
            controllers.append(ingress.controller(app, f"127.0.0.1:{free_port()}"))
            controllers[0].start()
        client = smtplib.SMTP("127.0.0.1", controllers[0].port, timeout=10)
        clients.append(client)
        return client

    try:
        yield connect
    finally:
        for client in clients:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
        for controller in controllers:
            controller.stop()


@pytest.fixture
def tls_client(app, gateway, ingress_server, tmp_path):
    """Connect from outside CCM_RELAY_NETWORKS and start TLS: the ingress then offers AUTH."""
    ca = ThrowawayCA()
    app.config["SMTP_TLS_CERT"] = str(ca.server_files("gateway.test", tmp_path))
    app.config["RELAY_NETWORKS"] = "192.0.2.0/24"

    def connect() -> smtplib.SMTP:
        client = ingress_server()
        context = ca.client_context()
        context.check_hostname = False  # smtplib names the host 127.0.0.1
        client.starttls(context=context)
        client.ehlo()
        return client

    return connect


@pytest.fixture
def signed_in_client(app, gateway, ingress_server, tmp_path):
    """Connect from outside CCM_RELAY_NETWORKS, start TLS and sign in with SMTP AUTH as
    ``login`` (a user made with the test password): a mail client on the Internet."""
    ca = ThrowawayCA()
    app.config["SMTP_TLS_CERT"] = str(ca.server_files("gateway.test", tmp_path))
    app.config["RELAY_NETWORKS"] = "192.0.2.0/24"

    def connect(login: str = "alice@acme.test") -> smtplib.SMTP:
        client = ingress_server()
        context = ca.client_context()
        context.check_hostname = False  # smtplib names the host 127.0.0.1
        client.starttls(context=context)
        client.ehlo("laptop.acme.test")
        client.login(login, PASSWORD)
        return client

    return connect

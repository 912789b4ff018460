"""The loopback servers of tests/servers.py, driven by smtplib and dnspython as real clients."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time

import dns.rdatatype
import dns.resolver
import pytest
from servers import DnsServer, SmtpSink, ThrowawayCA, self_signed_server_context

MESSAGE = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nbody\r\n"


class LoopbackSMTP(smtplib.SMTP):
    """Dials the sink on 127.0.0.1 whatever host name it is given, as if DNS said so.

    smtplib checks the server certificate against the name passed to connect(); this lets
    a test use a real host name for that while the server listens on loopback.
    """

    def __init__(self, host: str, port: int):
        self.loopback_port = port
        super().__init__(host, port, timeout=10)

    def _get_socket(self, host, port, timeout):
        return socket.create_connection(("127.0.0.1", self.loopback_port), timeout)


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


@pytest.fixture
def ca():
    return ThrowawayCA()


def send(server: SmtpSink, rcpts=("b@example.test",), **kwargs) -> dict:
    with smtplib.SMTP(server.host, server.port, timeout=kwargs.pop("timeout", 10)) as client:
        return client.sendmail("a@example.test", list(rcpts), MESSAGE, **kwargs)


# -- SMTP: plain delivery and STARTTLS


def test_plain_delivery_is_captured(sink):
    assert send(sink, rcpts=["b@example.test", "c@example.test"]) == {}
    [delivery] = sink.wait_for(1)
    assert delivery.mail_from == "a@example.test"
    assert delivery.rcpt_tos == ["b@example.test", "c@example.test"]
    assert delivery.data == MESSAGE
    assert delivery.message["Subject"] == "hello"
    assert delivery.tls_version is None


def test_wait_for_names_what_is_missing(sink):
    with pytest.raises(AssertionError, match=r"expected 1 message\(s\) within 0.1s, got 0"):
        sink.wait_for(1, timeout=0.1)


def test_commands_are_counted_as_they_arrive_whatever_the_answer(sink):
    """What a test waits for instead of sleeping: the client is waiting for its answer."""
    sink.fail("DATA", 451, "4.3.0 Try later")
    with pytest.raises(smtplib.SMTPDataError):
        send(sink)
    sink.wait_for_command("DATA")  # counted though refused
    sink.wait_for_command("QUIT")
    assert sink.messages == []
    with pytest.raises(AssertionError, match=r"expected DATA 2 time\(s\) within 0.1s, got 1"):
        sink.wait_for_command("DATA", 2, timeout=0.1)


def test_no_starttls_without_a_context(sink):
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("starttls")


def test_starttls_is_offered_and_its_version_recorded(ca):
    with SmtpSink(tls_context=ca.server_context("127.0.0.1")) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=ca.client_context())
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        [delivery] = sink.wait_for(1)
    assert delivery.tls_version in {"TLSv1.2", "TLSv1.3"}


def test_require_tls_refuses_mail_before_starttls(ca):
    with SmtpSink(tls_context=ca.server_context("127.0.0.1"), require_tls=True) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.ehlo()
            assert client.mail("a@example.test")[0] == 530
            client.starttls(context=ca.client_context())
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert len(sink.wait_for(1)) == 1


def test_require_tls_needs_a_context():
    with pytest.raises(ValueError, match="tls_context"):
        SmtpSink(require_tls=True)


def test_client_verifies_the_right_host_name(ca):
    with SmtpSink(tls_context=ca.server_context("mx.example.test")) as sink:
        with LoopbackSMTP("mx.example.test", sink.port) as client:
            client.starttls(context=ca.client_context())
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert sink.wait_for(1)[0].tls_version is not None


@pytest.mark.parametrize(
    "server_context",
    [
        pytest.param(lambda ca: ca.server_context("other.example.test"), id="wrong-name"),
        pytest.param(lambda ca: self_signed_server_context("mx.example.test"), id="untrusted"),
    ],
)
def test_client_refuses_a_certificate_it_cannot_verify(ca, server_context):
    with (
        SmtpSink(tls_context=server_context(ca)) as sink,
        LoopbackSMTP("mx.example.test", sink.port) as client,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client.starttls(context=ca.client_context())
    assert sink.messages == []


def test_ca_file_is_a_pem_that_clients_can_load(ca, tmp_path):
    path = ca.ca_file(tmp_path)
    assert path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    with (
        SmtpSink(tls_context=ca.server_context("127.0.0.1")) as sink,
        smtplib.SMTP(sink.host, sink.port, timeout=10) as client,
    ):
        client.starttls(context=ssl.create_default_context(cafile=path))
        assert client.noop()[0] == 250


# -- SMTP: scripted failures


def test_temporary_rcpt_failure_then_success(sink):
    sink.fail("RCPT", 451, "4.3.0 try again later")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(sink)
    assert refused.value.recipients == {"b@example.test": (451, b"4.3.0 try again later")}
    assert sink.messages == []
    send(sink)
    assert len(sink.wait_for(1)) == 1


def test_failure_at_mail(sink):
    sink.fail("MAIL", 421, "4.7.0 too busy", times=2)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(sink)
        assert refused.value.smtp_code == 421
    send(sink)
    assert len(sink.wait_for(1)) == 1


def test_permanent_failure_at_data(sink):
    sink.fail("DATA", 550, "5.7.1 message refused")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(sink)
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 message refused"
    assert sink.messages == []


def test_unknown_stage_is_refused(sink):
    with pytest.raises(ValueError, match="stage"):
        sink.fail("EHLO", 550, "no")


def test_dropped_connection_during_data(sink):
    sink.drop_during_data()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(sink)
    assert sink.messages == []
    send(sink)  # only the first DATA was dropped
    assert len(sink.wait_for(1)) == 1


def test_dropped_connection_during_data_over_tls(ca):
    with SmtpSink(tls_context=ca.server_context("127.0.0.1")) as sink:
        sink.drop_during_data()
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.starttls(context=ca.client_context())
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert sink.messages == []


def test_delay_before_answering_data(sink):
    sink.delay(0.5)
    started = time.monotonic()
    send(sink)
    assert time.monotonic() - started >= 0.5
    assert len(sink.wait_for(1)) == 1


def test_client_that_gives_up_during_a_delay(sink):
    sink.delay(2)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        send(sink, timeout=0.3)
    sink.delay(0)
    send(sink)
    assert len(sink.wait_for(1)) == 1  # the abandoned message was not captured


def test_delay_before_answering_quit_keeps_the_message(sink):
    sink.delay_quit(2)
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=0.3) as client:
        client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.quit()
    assert len(sink.wait_for(1)) == 1


# -- DNS


@pytest.fixture
def dns_server():
    with DnsServer() as server:
        yield server


@pytest.fixture
def resolver(dns_server):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_server.port
    resolver.lifetime = 5
    return resolver


def test_address_is_host_and_port(dns_server):
    assert dns_server.address == f"127.0.0.1:{dns_server.port}"


def test_mx_records_in_any_case(dns_server, resolver):
    dns_server.add_mx("Example.TEST", 20, "mx2.example.test")
    dns_server.add_mx("example.test", 10, "mx1.example.test.")
    answer = resolver.resolve("EXAMPLE.test", "MX")
    # Name compression may reuse the question's spelling: "mx1.EXAMPLE.test." is right too.
    assert sorted((r.preference, r.exchange.to_text().lower()) for r in answer) == [
        (10, "mx1.example.test."),
        (20, "mx2.example.test."),
    ]
    assert answer.rrset.ttl > 0


def test_a_and_aaaa_records(dns_server, resolver):
    dns_server.add_a("mx.example.test", "127.0.0.1")
    dns_server.add_aaaa("mx.example.test", "::1")
    assert [r.address for r in resolver.resolve("mx.example.test", "A")] == ["127.0.0.1"]
    assert [r.address for r in resolver.resolve("mx.example.test", "AAAA")] == ["::1"]


def test_unknown_name_is_nxdomain(dns_server, resolver):
    dns_server.add_a("mx.example.test", "127.0.0.1")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("nobody.example.test", "A")


def test_a_forgotten_name_answers_afresh(dns_server, resolver):
    dns_server.add_a("relay.example.test", "127.0.0.1")
    dns_server.forget("RELAY.example.test")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("relay.example.test", "A")
    dns_server.add_a("relay.example.test", "127.0.0.2")
    assert [r.address for r in resolver.resolve("relay.example.test", "A")] == ["127.0.0.2"]


def test_known_name_without_that_type_has_an_empty_answer(dns_server, resolver):
    dns_server.add_a("mx.example.test", "127.0.0.1")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("mx.example.test", "MX")


def test_txt_record(dns_server, resolver):
    dns_server.add_txt("example.test", 'v=spf1 -all "quoted"')
    [record] = resolver.resolve("example.test", "TXT")
    assert record.strings == (b'v=spf1 -all "quoted"',)


def test_long_txt_is_split_into_strings(dns_server, resolver):
    key = "v=DKIM1; k=rsa; p=" + "A" * 400  # as long as a 2048-bit key
    dns_server.add_txt("sel._domainkey.example.test", key)
    [record] = resolver.resolve("sel._domainkey.example.test", "TXT")
    assert [len(s) for s in record.strings] == [255, len(key) - 255]
    assert b"".join(record.strings).decode() == key


def test_answer_too_big_for_udp_comes_over_tcp(dns_server, resolver):
    for i in range(5):
        dns_server.add_txt("big.example.test", f"{i}" * 600)
    answer = resolver.resolve("big.example.test", "TXT")  # truncated over UDP, then TCP
    assert sorted(b"".join(r.strings)[:1] for r in answer) == [b"0", b"1", b"2", b"3", b"4"]
    tcp = dns.resolver.Resolver(configure=False)
    tcp.nameservers, tcp.port = ["127.0.0.1"], dns_server.port
    assert len(tcp.resolve("big.example.test", "TXT", tcp=True)) == 5

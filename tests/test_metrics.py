"""Prometheus metrics: ``/metrics`` on the portal, what it counts, and several processes
counting into one directory (app/metrics.py, app/web/monitoring.py).

The test process counts into one directory for all its tests (the first application's),
so a test compares a count before and after what it does, never with a fixed number.
"""

from __future__ import annotations

import contextlib
import glob
import os
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import CcmWeb, Visitor

from app import metrics
from app.extensions import db
from app.models import OutboundItem, QueueState

#: the families the issue names: received, held, delivered/deferred/bounced/failed (one
#: family, by outcome), queue depth and oldest age, latencies, notifications, sign-ins
FAMILIES = {
    "ccm_messages_received", "ccm_recipients_received", "ccm_recipients_held",
    "ccm_delivery_outcomes", "ccm_delivery_latency_seconds", "ccm_smtp_transaction_seconds",
    "ccm_notifications_sent", "ccm_portal_request_seconds", "ccm_sign_in_failures",
    "ccm_lockouts", "ccm_queue_items", "ccm_queue_oldest_item_age_seconds", "ccm_queue_read",
}
WRONG = {"email": "alice@acme.test", "password": "not the password at all"}


def scrape(get, **environ) -> dict[tuple, float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    answer = get("/metrics", **environ)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    assert "Set-Cookie" not in answer.headers
    return samples(answer.text)


def samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def test_metrics_names_every_family_and_parses(client):
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert families(answer.text) >= FAMILIES
    assert scrape(client.get)[("ccm_queue_read", ())] == 1


def test_metrics_is_only_for_the_allowed_networks(app):
    """To anyone else it is the portal's own 404, as for any path that does not exist:
    the same page (nothing tells that /metrics exists)."""
    def fresh(method, path, address):
        return app.test_client().open(path, method=method,
                                      environ_base={"REMOTE_ADDR": address})

    for address in ("192.0.2.7", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.7", "", "junk"):
        for method in ("GET", "HEAD", "POST"):
            # a path of the same length: the page names its own path (the language chooser's
            # way back), so only the lengths of the paths may differ
            answer, unknown = (fresh(method, path, address) for path in ("/metrics", "/nothing"))
            assert answer.status_code == unknown.status_code == 404, (address, method)
            assert "ccm_" not in answer.text
            assert len(answer.text) == len(unknown.text)
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert fresh("GET", "/metrics", address).status_code == 200


@pytest.mark.parametrize("app", [{"METRICS_NETWORKS": "192.0.2.0/24"}], indirect=True)
def test_the_allowed_networks_are_a_setting(client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200


def test_metrics_takes_only_get_and_head(client):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = client.open("/metrics", method=method)
        assert answer.status_code == 405
        assert answer.headers["Allow"] == "GET, HEAD"
    assert client.head("/metrics").status_code == 200


def test_a_page_is_timed_under_its_endpoint_not_its_url(client):
    count = ("ccm_portal_request_seconds_count", (("endpoint", "auth.sign_in"),))
    other = ("ccm_portal_request_seconds_count", (("endpoint", "other"),))
    before = scrape(client.get)
    assert client.get("/sign-in").status_code == 200
    for path in ("/no-such-page", "/no/such/page/either", "/%00"):
        client.get(path)
    after = scrape(client.get)
    assert after[count] - before.get(count, 0) == 1
    assert after[other] - before.get(other, 0) == 3
    endpoints = {dict(labels)["endpoint"] for (name, labels) in after
                 if name == "ccm_portal_request_seconds_count"}
    assert not any("/" in endpoint for endpoint in endpoints)


def test_a_wrong_password_counts_a_failure_and_enough_lock_out(client, auth, acme, make_user):
    from app.domain import accounts

    make_user(acme, "alice@acme.test")
    failures = ("ccm_sign_in_failures_total", (("factor", "password"),))
    lockouts = ("ccm_lockouts_total", ())
    before = scrape(client.get)
    for _ in range(accounts.MAX_FAILURES):
        auth.sign_in("alice@acme.test", "not the password")
    after = scrape(client.get)
    assert after[failures] - before[failures] == accounts.MAX_FAILURES
    assert after[lockouts] - before[lockouts] == 1


def test_the_queue_depth_is_what_the_database_holds(client, app, frozen_clock):
    now = frozen_clock.now
    ages = {QueueState.PENDING: [10, 3600], QueueState.SHUNTED: [120],
            QueueState.ON_HOLD: [5], QueueState.DONE: [99999], QueueState.FAILED: [99999]}
    for state, seconds in ages.items():
        for age in seconds:
            db.session.add(OutboundItem(kind="delivery", route="external", state=state,
                                        mail_from="a@acme.test", rcpt_to="b@example.org",
                                        created_at=now - timedelta(seconds=age)))
    db.session.commit()
    found = scrape(client.get)
    waiting = (QueueState.PENDING, QueueState.SENDING, QueueState.SHUNTED,
               QueueState.ON_HOLD)
    for state in waiting:
        labels = (("state", str(state)),)
        assert found[("ccm_queue_items", labels)] == len(ages.get(state, []))
        assert found[("ccm_queue_oldest_item_age_seconds", labels)] == \
            max(ages.get(state, [0]))
    assert not any(dict(labels).get("state") in ("done", "failed")
                   for (name, labels) in found if name.startswith("ccm_queue"))


def test_label_values_outside_the_closed_sets_count_as_other(client):
    before = scrape(client.get)
    for strange in ("", "x" * 500, "ccm\n", None):
        metrics.received([strange])
        metrics.delivery_outcome(strange, strange, strange, 1.0)
    db.session.commit()
    after = scrape(client.get)
    recipients = ("ccm_recipients_received_total", (("route", "other"),))
    outcomes = ("ccm_delivery_outcomes_total",
                (("kind", "other"), ("outcome", "other"), ("route", "other")))
    assert after[recipients] - before.get(recipients, 0) == 4
    assert after[outcomes] - before.get(outcomes, 0) == 4
    assert len(after) - len(before) == 2


def test_a_sent_item_is_an_outcome_a_latency_and_for_generated_mail_a_notification(client):
    before = scrape(client.get)
    metrics.delivery_outcome("notification", "external", "sent", 42.0)
    metrics.delivery_outcome("delivery", "internal", "deferred", 42.0)
    db.session.commit()
    after = scrape(client.get)

    def grew(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0)

    assert grew("ccm_delivery_outcomes_total", kind="notification", route="external",
                outcome="sent") == 1
    assert grew("ccm_delivery_outcomes_total", kind="delivery", route="internal",
                outcome="deferred") == 1
    # a float: what other tests of this process added before makes the difference inexact
    assert grew("ccm_delivery_latency_seconds_sum", kind="notification",
                route="external") == pytest.approx(42.0)
    assert grew("ccm_delivery_latency_seconds_count", kind="delivery", route="internal") == 0
    assert grew("ccm_notifications_sent_total", kind="notification") == 1


def test_what_a_transaction_records_counts_only_when_it_commits(client, app):
    """A group of received messages whose commit fails is sent again by its clients:
    counted at the failed attempt too, it would be counted twice."""
    messages = ("ccm_messages_received_total", ())
    held = ("ccm_recipients_held_total", ())
    before = scrape(client.get)
    for end in (db.session.rollback, db.session.close, db.session.remove):
        metrics.received(["ccm"])
        metrics.held()
        end()
    with db.session.begin_nested():  # a savepoint's commit is not the transaction's
        metrics.received(["ccm"])
    assert scrape(client.get)[messages] == before[messages]
    metrics.held()
    db.session.commit()
    after = scrape(client.get)
    assert after[messages] - before[messages] == 1
    assert after[held] - before[held] == 1


# --- several processes ------------------------------------------------------------------


def test_two_portals_share_one_directory_and_either_shows_the_sum(app, tmp_path, acme,
                                                                  make_user):
    make_user(acme, "alice@acme.test")
    db.session.commit()
    shared = tmp_path / "metrics"
    settings = {"CCM_DATABASE_URL": app.config["DATABASE_URL"],
                "CCM_SECRET_KEY": "metrics-test-key", "CCM_METRICS_DIR": str(shared)}
    sign_in = ("ccm_portal_request_seconds_count", (("endpoint", "auth.sign_in"),))
    failures = ("ccm_sign_in_failures_total", (("factor", "password"),))
    for name in ("first", "second", "third"):
        (tmp_path / name).mkdir()
    with contextlib.ExitStack() as stack:
        first, second = (stack.enter_context(CcmWeb(tmp_path / name, settings))
                         for name in ("first", "second"))
        for _ in range(3):
            assert Visitor(first.port).request("GET", "/sign-in").status == 200
        assert Visitor(second.port).submit("/sign-in", WRONG).status == 200  # GET + POST
        for web in (first, second):
            found = samples(Visitor(web.port).request("GET", "/metrics").text)
            assert found[sign_in] == 5
            assert found[failures] == 1
        gone = _pids(shared)
        assert len(gone) == 2
    # Both gone: a new process folds their files into the archive, and the sums stay.
    with CcmWeb(tmp_path / "third", settings) as third:
        found = samples(Visitor(third.port).request("GET", "/metrics").text)
        assert found[sign_in] == 5
        assert found[failures] == 1
        assert _pids(shared).isdisjoint(gone)


def _pids(directory) -> frozenset[str]:
    names = (os.path.basename(path)[:-3] for path in glob.glob(f"{directory}/*.db"))
    return frozenset(name.rpartition("_")[2] for name in names) - {"archive"}


def test_only_this_machines_dead_processes_are_folded(tmp_path):
    """Containers sharing the folder each have their own process ids: a file of another
    machine's process is never taken for a dead one of this machine's (and removed)."""
    from prometheus_client.mmap_dict import MmapedDict

    from app import metrics

    dead = 4_000_000  # above any pid_max: no process of this machine
    here = tmp_path / f"counter_{dead}-{metrics._host()}.db"
    elsewhere = tmp_path / f"counter_{dead}-another-container.db"
    before_hosts = tmp_path / f"counter_{dead + 1}.db"  # written before files named hosts
    for path in (here, elsewhere, before_hosts):
        MmapedDict(str(path)).close()
    metrics._fold_dead_processes(str(tmp_path))
    assert sorted(path.name for path in tmp_path.glob("*.db")) == [
        elsewhere.name, "counter_archive.db"]
    assert metrics._identity() == f"{os.getpid()}-{metrics._host()}"
    assert "_" not in metrics._host()


def test_a_live_gauge_of_another_machine_counts_while_its_process_writes_it(tmp_path):
    """A ccm smtp in another container, killed with it, cannot be asked whether it runs:
    its file counts while it is written (every second), not once it is left alone."""
    import time

    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    def gauge(path, value):
        written = MmapedDict(str(path))
        written.write_value(mmap_key("ccm_smtp_processes", "ccm_smtp_processes", ["state"],
                                     ["running"], "processes"), value, 0.0)
        written.close()

    def counted() -> float:
        return sum(sample.value for family in metrics._Files(str(tmp_path)).collect()
                   for sample in family.samples if sample.name == "ccm_smtp_processes")

    alive = tmp_path / "gauge_livesum_7-another-container.db"
    gone = tmp_path / "gauge_livesum_8-a-container-killed.db"
    gauge(alive, 2)
    gauge(gone, 3)
    stale = time.time() - metrics.LIVE_GAUGE_FRESH - 1
    os.utime(gone, (stale, stale))
    assert counted() == 2

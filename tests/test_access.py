"""The access rules (webapp/auth/access.py) and the sign-in throttle, as plain functions."""

from __future__ import annotations

import pytest

from webapp.auth.access import Actor, CollectionAccess, Forbidden
from webapp.auth.throttle import SigninThrottle, address_key, delay_s

ADA, BOB, CY, VIC = Actor("ada", "admin"), Actor("bob", "member"), Actor("cy", "member"), Actor("vic", "viewer")


@pytest.mark.parametrize(
    "collection, readers, managers",
    [
        (CollectionAccess("p", "bob", "private"), {ADA, BOB}, {ADA, BOB}),
        (CollectionAccess("s", "bob", "shared", ("cy", "vic")), {ADA, BOB, CY, VIC}, {ADA, BOB, CY}),
        (CollectionAccess("s2", "bob", "shared", ("CY",)), {ADA, BOB, CY}, {ADA, BOB, CY}),  # names ignore case
        (CollectionAccess("e", "bob", "everyone"), {ADA, BOB, CY, VIC}, {ADA, BOB}),
        (CollectionAccess("legacy", None, "everyone"), {ADA, BOB, CY, VIC}, {ADA}),  # made before users: the admins'
        (CollectionAccess("v", "vic", "private"), {ADA, VIC}, {ADA}),  # a viewer never manages documents
    ],
)
def test_who_reads_and_who_manages(collection, readers, managers):
    everyone = {ADA, BOB, CY, VIC}
    assert {a for a in everyone if collection.can_read(a)} == readers
    assert {a for a in everyone if collection.can_manage_documents(a)} == managers
    assert {a for a in everyone if collection.can_change_sharing(a)} == (
        {ADA} | ({a for a in everyone if a.name == collection.owner and a.can_upload})
    )


def test_role_checks_say_what_is_refused():
    with pytest.raises(Forbidden, match="Only an admin can re-embed"):
        BOB.require_admin("re-embed")
    with pytest.raises(Forbidden, match=r"Your role \(viewer\) cannot upload"):
        VIC.require_member("upload")
    ADA.require_admin("anything")
    BOB.require_member("upload")


def test_throttle_slows_each_key_and_caps_the_wait(store_location):
    from webapp.auth.users import UserStore

    UserStore(store_location).close()  # creates the tables in SQLite (migration step 2)
    now = [1000.0]
    throttle = SigninThrottle(
        store_location, free_failures=3, familiar_cap_s=30, stranger_cap_s=900, clock=lambda: now[0]
    )
    assert [delay_s(n, 3, 30) for n in range(10)] == [0, 0, 0, 2, 4, 8, 16, 30, 30, 30]
    for _ in range(3):
        assert not throttle.begin("dee", "10.0.0.1").refused
    refused = throttle.begin("dee", "10.0.0.1")
    assert refused.refused and refused.retry_after_s == pytest.approx(2)
    assert not throttle.begin("cy", "10.0.0.1").refused  # another name from the same address
    # However long the guessing, a stranger waits at most the stranger cap, and a clock set back
    # does not turn that into hours.
    for _ in range(40):
        now[0] += 901
        throttle.begin("dee", "10.0.0.9")
    assert throttle.begin("dee", "10.0.0.9").retry_after_s <= 900
    now[0] -= 86400
    assert throttle.begin("dee", "10.0.0.9").retry_after_s <= 900
    now[0] += 86400 + 3601
    assert not throttle.begin("dee", "10.0.0.9").refused  # an hour without failures: the count starts over
    # A user at an address they signed in from is counted apart, and waits at most the small cap.
    now[0] += 3601
    ok = throttle.begin("amy", "10.0.0.2")
    throttle.succeeded(ok)
    for _ in range(40):
        now[0] += 31
        throttle.begin("amy", "10.0.0.2")
    wait = throttle.begin("amy", "10.0.0.2")
    assert wait.familiar and 0 < wait.retry_after_s <= 30
    assert address_key("2001:db8::1") == address_key("2001:db8::2") == "2001:db8::/64"
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"


def test_throttle_counts_hold_across_replicas_and_concurrent_guesses(store_location):
    """Two throttles on one database, as two app replicas have them: failures counted through one
    delay attempts through the other, and guesses racing through both get at most the free ones."""
    import threading

    from webapp.auth.users import UserStore

    UserStore(store_location).close()
    now = [5000.0]
    one, two = (SigninThrottle(store_location, free_failures=3, clock=lambda: now[0]) for _ in range(2))
    for replica in (one, two, one):
        assert not replica.begin("eve", "10.0.0.7").refused
    assert two.begin("eve", "10.0.0.8").retry_after_s == pytest.approx(2)  # the name's count, from one
    now[0] += 3601
    ok = one.begin("eve", "10.0.0.7")
    two.succeeded(ok)
    assert one.begin("eve", "10.0.0.7").familiar  # signed in through two, familiar to one
    now[0] += 3601
    admitted = []

    def guess(throttle):
        for _ in range(10):
            if not throttle.begin("fay", "10.0.0.9").refused:
                admitted.append(1)
        throttle.close()  # this thread's connection

    threads = [threading.Thread(target=guess, args=(t,)) for t in (one, two, one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 3


def test_the_grafana_dashboard_only_uses_metrics_the_app_exports():
    import json
    import re
    from pathlib import Path

    from prometheus_client import generate_latest

    from webapp.llm.base import StreamStats
    from webapp.metrics import Metrics

    metrics = Metrics()
    # Labelled series appear once used: one answer, one failure, one refusal, one indexing.
    stats = StreamStats()
    stats.ttft_s, stats.completion_tokens, stats.total_s, stats.finish_reason = 0.2, 5, 1.0, "stop"
    metrics.answered("m", stats)
    metrics.failed.labels("m", "openvino").inc()
    metrics.started.labels("m", "openvino").inc()
    metrics.refused.labels("busy").inc()
    metrics.documents.labels("indexed").inc()
    exported = set(re.findall(r"^(docchat_\w+)", generate_latest(metrics.registry).decode(), re.M))
    exported |= {name + "_total" for name in exported} | {name + "_bucket" for name in exported}
    dashboard = json.loads((Path(__file__).parent.parent / "k8s/monitoring/grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"docchat_\w+", target["expr"])
    }
    assert used and used <= exported, used - exported

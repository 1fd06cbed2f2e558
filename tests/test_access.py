"""The access rules (webapp/auth/access.py) and the sign-in throttle, as plain functions."""

from __future__ import annotations

import pytest

from webapp.auth.access import Actor, CollectionAccess, Forbidden
from webapp.auth.throttle import Throttle

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


def test_throttle_counts_per_key_in_a_sliding_window():
    now = [1000.0]
    throttle = Throttle(window_s=900, clock=lambda: now[0])
    limits = {"user:dee": 3, "addr:10.0.0.1": 12}
    for _ in range(3):
        assert throttle.wait_s(limits) == 0
        throttle.failed(*limits)
    assert throttle.wait_s(limits) == pytest.approx(900)
    assert throttle.wait_s({"user:cy": 3, "addr:10.0.0.1": 12}) == 0  # another name from the same address
    now[0] += 901
    assert throttle.wait_s(limits) == 0  # the window slid past the failures
    throttle.failed("user:dee")
    throttle.forget("user:dee")
    assert throttle.wait_s({"user:dee": 1}) == 0


def test_throttle_memory_is_bounded():
    throttle = Throttle(max_keys=100)
    for n in range(1000):
        throttle.failed(f"user:made-up-{n}")
    assert len(throttle._failures) == 100


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

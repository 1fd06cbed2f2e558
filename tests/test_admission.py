"""Admission control: slots, a bounded FIFO queue, refusal at once, one ticket per session."""

import threading

import pytest

from webapp.chat.admission import Admission, Busy, Superseded


def test_slots_then_queue_then_refusal():
    a = Admission(slots=2, max_waiting=1)
    t1, t2 = a.enter("s1"), a.enter("s2")
    assert t1.active and t2.active
    t3 = a.enter("s3")
    assert not t3.active and t3.ahead() == 0
    with pytest.raises(Busy, match="busy \\(2 being answered, 1 waiting\\)"):
        a.enter("s4")
    assert a.stats().refused == 1
    t1.release()
    assert t3.wait(1.0) and t3.active
    assert a.stats().active == 2 and a.stats().waiting == 0


def test_queue_is_first_in_first_out_and_positions_count_down():
    a = Admission(slots=1, max_waiting=3)
    running = a.enter("a")
    waiting = [a.enter(f"w{i}") for i in range(3)]
    assert [t.ahead() for t in waiting] == [0, 1, 2]
    running.release()
    assert waiting[0].active and [t.ahead() for t in waiting[1:]] == [0, 1]
    waiting[1].release()  # gave up while waiting (tab closed)
    assert waiting[2].ahead() == 0


def test_wait_times_out_without_a_slot():
    a = Admission(slots=1, max_waiting=1)
    a.enter("a")
    t = a.enter("b")
    assert t.wait(0.05) is False


def test_a_new_question_from_the_same_session_replaces_its_waiting_one():
    a = Admission(slots=1, max_waiting=1)
    a.enter("other")
    first = a.enter("tab")
    second = a.enter("tab")  # the queue holds one; the tab's newer question takes its place
    with pytest.raises(Superseded):
        first.wait(0.01)
    assert a.stats().waiting == 1 and second.ahead() == 0


def test_release_is_idempotent_and_never_goes_negative():
    a = Admission(slots=1, max_waiting=0)
    t = a.enter()
    t.release()
    t.release()
    assert a.stats().active == 0
    assert a.enter().active


def test_many_threads_never_exceed_the_slots():
    a = Admission(slots=3, max_waiting=100)
    peak, now, lock = [0], [0], threading.Lock()

    def worker():
        t = a.enter()
        while not t.wait(0.5):
            pass
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        with lock:
            now[0] -= 1
        t.release()

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert peak[0] <= 3 and a.stats().active == 0 and a.stats().waiting == 0

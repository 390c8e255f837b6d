"""The per-caller queue of requests waiting for a worker thread (service/fair_queue.py)."""

from __future__ import annotations

import pytest

from service.fair_queue import FairQueue, caller_of


def test_callers_take_turns_and_each_keeps_its_order():
    queue: FairQueue[str] = FairQueue()
    for n in range(1, 6):
        queue.push(b"hog", f"hog{n}")
    queue.push(b"a", "a1")
    queue.push(b"b", "b1")
    queue.push(b"a", "a2")
    assert len(queue) == 8
    order = [queue.pop() for _ in range(len(queue))]
    assert order == ["hog1", "a1", "b1", "hog2", "a2", "hog3", "hog4", "hog5"]
    assert len(queue) == 0
    with pytest.raises(IndexError):
        queue.pop()


def test_a_caller_that_comes_back_goes_to_the_end():
    queue: FairQueue[str] = FairQueue()
    queue.push(b"a", "a1")
    queue.push(b"b", "b1")
    assert queue.pop() == "a1"
    queue.push(b"a", "a2")  # a had nothing waiting: it queues behind b
    assert [queue.pop(), queue.pop()] == ["b1", "a2"]


def test_the_caller_is_the_authorization_value_else_the_address():
    head = b"GET /v1/profiles/c1 HTTP/1.1\r\nHost: x\r\nAUTHORIZATION:  Bearer abc \r\n\r\n"
    assert caller_of(head, "10.0.0.1") == b"k:Bearer abc"
    other = b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer zzz\r\n\r\n"
    assert caller_of(other, "10.0.0.1") != caller_of(head, "10.0.0.1")
    anonymous = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    assert caller_of(anonymous, "10.0.0.1") == b"a:10.0.0.1"
    assert caller_of(b"GET / HTTP/1.1\r\nAuthorization:\r\n\r\n", "::1") == b"a:::1"
    # a header whose name only ends in "authorization" is not the credentials
    assert caller_of(b"GET / HTTP/1.1\r\nX-Authorization: k\r\n\r\n", "1.2.3.4") == b"a:1.2.3.4"

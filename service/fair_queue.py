"""Requests waiting for a worker thread, taken in turn per caller.

gunicorn's thread pool runs what it is given first come, first served, so a caller with 48
connections fills the queue ahead of one with 1 and every other caller waits behind all of its
requests (issue 18). ``service/gunicorn_worker.py`` hands the pool at most one request per
thread and keeps the rest here: one queue per caller (the request's ``Authorization`` value,
else the client address), and the callers served round-robin. A caller with many requests
waiting gets one thread turn in as many as there are callers waiting; within a caller the order
is kept.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")

_AUTHORIZATION = re.compile(rb"\r\nauthorization:[ \t]*([^\r\n]*)", re.IGNORECASE)


def caller_of(head: bytes | bytearray, address: str, end: int | None = None) -> bytes:
    """Whom a buffered request head (``head[:end]``, searched in place) is from: its
    ``Authorization`` value, else ``address``."""
    found = _AUTHORIZATION.search(head, 0, len(head) if end is None else end)
    if found and found.group(1).strip():
        return b"k:" + found.group(1).strip()
    return b"a:" + address.encode()


class FairQueue(Generic[T]):
    """First in, first out per caller; round-robin across callers."""

    def __init__(self) -> None:
        self._callers: OrderedDict[bytes, deque[T]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, caller: bytes, item: T) -> None:
        waiting = self._callers.get(caller)
        if waiting is None:
            waiting = self._callers[caller] = deque()
        waiting.append(item)
        self._size += 1

    def pop(self) -> T:
        """The next caller's oldest item (IndexError when empty); that caller goes last."""
        if not self._callers:
            raise IndexError("pop from an empty FairQueue")
        caller, waiting = self._callers.popitem(last=False)
        item = waiting.popleft()
        if waiting:
            self._callers[caller] = waiting
        self._size -= 1
        return item

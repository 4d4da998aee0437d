"""prefetch: the export's read-ahead thread keeps order, hands errors over and stops early."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sandboxer.chargeback.prefetch import prefetch


def test_items_come_in_order() -> None:
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetch(iter([]))) == []


def test_an_error_is_raised_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise FileNotFoundError("ledger file gone")

    stream = prefetch(items())
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(FileNotFoundError, match="ledger file gone"):
        next(stream)


def test_a_consumer_that_stops_early_stops_the_worker() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(10_000):
            produced.append(i)
            yield i

    stream = prefetch(items(), depth=2)
    assert next(stream) == 0
    stream.close()  # joins the worker
    assert not any(t.name == "sandboxer-export-prefetch" for t in threading.enumerate())
    assert len(produced) <= 4  # the one taken, two queued, one waiting to be queued

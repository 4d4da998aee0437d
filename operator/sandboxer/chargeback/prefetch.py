"""Run an iterator one step ahead in a thread, so that producing and consuming overlap.

The export reads, hashes and parses ledger files (file reads, hashlib and Arrow's JSON reader
all release the GIL) while the caller builds and writes FOCUS rows from the batches before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar, cast

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """Yield `items` in order, at most `depth` of them produced ahead by a worker thread.

    An exception raised by `items` is raised here, at its place in the sequence. If the caller
    stops early (closes the generator or raises), the worker stops at its next item.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            offer(_Failed(error))

    worker = threading.Thread(target=work, name="sandboxer-export-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        stop.set()
        worker.join()

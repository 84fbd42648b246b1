"""Fork safety: every lock of ours is usable again in a forked child.

``os.fork()`` copies a process with only the forking thread in it. A lock that
another thread held at that moment stays held in the child for ever, and the
child's first call that needs it hangs (seen: a breaker's ``acquire``, the
metrics lock). So every lock this package takes is made by :func:`new_lock` or
:func:`new_rlock`, which remember it, and is re-initialised (released, in place,
so every reference to it sees the fresh lock) in the child before anything else
runs there. Module-level locks of any ``botocore_resilience`` module are found
and re-initialised as well, so a module needs no code of its own for them.

Objects whose fork handling is more than a lock (the ``/metrics`` server closes
its inherited listening socket; metrics re-initialise the locks inside
prometheus-client's objects they own) register a callback with
:func:`at_fork_in_child`.

What a child inherits is described in ``docs/how-to/prometheus-multiprocess.md``
(open circuits: yes; counter values: yes, as any prometheus-client metric).

>>> lock = new_lock()
>>> lock.acquire()
True
>>> reinit_lock(lock)  # what the child does to every lock of ours after os.fork()
>>> lock.locked()
False
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from typing import Any, Callable

__all__ = ["at_fork_in_child", "new_lock", "new_rlock", "reinit_lock"]

_LOCK_TYPES: tuple[type, ...] = (type(threading.Lock()), type(threading.RLock()))

# Weak: a lock (or an object's callback) that nothing else uses any more needs no care.
_locks: weakref.WeakSet[Any] = weakref.WeakSet()
_callbacks: dict[int, weakref.WeakMethod[Any]] = {}
_callback_ids = iter(range(1, sys.maxsize))
# Guards the two collections above; itself re-initialised first in the child.
_lock = threading.Lock()


def new_lock() -> threading.Lock:
    """A ``threading.Lock`` that is released in every forked child."""
    lock = threading.Lock()
    with _lock:
        _locks.add(lock)
    return lock


def new_rlock() -> threading.RLock:
    """A ``threading.RLock`` that is released in every forked child."""
    lock = threading.RLock()
    with _lock:
        _locks.add(lock)
    return lock


def reinit_lock(lock: object) -> None:
    """Release ``lock`` in place whoever held it (only safe in a freshly forked child).

    Anything that is not a lock (``None``, a prometheus-client object of a version
    without the attribute we looked for) is ignored.
    """
    reinit = getattr(lock, "_at_fork_reinit", None)
    if isinstance(lock, _LOCK_TYPES) and reinit is not None:
        # CPython's own fork handling (logging, threading) uses this: the lock object
        # stays the same, so copies of the reference held elsewhere are fixed too.
        reinit()


def at_fork_in_child(method: Callable[[], None]) -> None:
    """Call the bound ``method`` in every forked child, after the locks are re-initialised.

    Held weakly: once the method's object is gone, nothing is called.
    """
    with _lock:
        key = next(_callback_ids)
        _callbacks[key] = weakref.WeakMethod(method, lambda _ref: _callbacks.pop(key, None))  # type: ignore[arg-type]


def _module_locks() -> list[object]:
    prefix = __name__.rsplit(".", 1)[0]
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == prefix or name.startswith(prefix + ".")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, _LOCK_TYPES):
                found.append(value)
    return found


def _after_fork_in_child() -> None:
    reinit_lock(_lock)
    for lock in [*_locks, *_module_locks()]:
        reinit_lock(lock)
    for ref in list(_callbacks.values()):
        method = ref()
        if method is not None:
            try:
                method()
            except Exception:  # the child must go on whatever one of these does
                logging.getLogger("botocore_resilience").warning(
                    "fork handling failed in the child", exc_info=True
                )


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)

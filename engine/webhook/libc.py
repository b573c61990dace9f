"""What the C library offers a long-running server on Linux (glibc), reached with ctypes:
giving the allocator's free pages back, and tying a child process to its parent.
Elsewhere (musl, macOS) each function does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable


def _libc(name: str) -> Callable[..., int] | None:
    path = ctypes.util.find_library("c")
    try:
        function: Callable[..., int] | None = getattr(ctypes.CDLL(path), name, None) if path else None
        return function
    except OSError:
        return None


_malloc_trim = _libc("malloc_trim")
_prctl = _libc("prctl")
PR_SET_PDEATHSIG = 1


def release_memory() -> None:
    """Give the C heap's free pages back to the system. A large body's parsed document is
    freed in pieces that the heap keeps, and a webhook's resident memory is what its memory
    limit counts."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def die_with(parent: int) -> None:
    """End this process when `parent` ends, even when the parent is killed (by the OOM
    killer, say) and cannot stop it: Linux sends it SIGKILL when its parent dies."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)

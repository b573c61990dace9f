"""Where the bundled rules and templates are: inside the wheel, or beside `engine/`."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # secretpatch/, from secretpatch/core/


def bundled_dir(kind: str) -> Path:
    """`rules` or `templates`: the wheel's copy, else the checkout's (editable installs)."""
    for candidate in (_PACKAGE / "_bundled" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the bundled {kind} folder is missing from {_PACKAGE}")

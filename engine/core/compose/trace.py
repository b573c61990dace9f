"""What one composition asked of the pod, recorded by `PodPatch` for the review memo."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Trace:
    """What one composition read: pod-spec lists, container fields, names looked up in
    them, and metadata maps with the keys set in them."""

    lists: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    paths: set[tuple[str, str]] = field(default_factory=set)  # (list or field name, mount path)
    maps: set[str] = field(default_factory=set)
    map_keys: set[str] = field(default_factory=set)

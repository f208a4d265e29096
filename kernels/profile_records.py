"""Profiles as records: the ones a cached step's manifest keeps, and their light form for display.

No numpy here: a cached run reads its steps' profiles from their manifests, and importing numpy
for that would cost a re-run that computes nothing a fifth of its time (`profiles.py` takes them).
"""

from __future__ import annotations

SKETCHES = ("kll", "frequent")


def light(profiles: dict | None) -> dict | None:
    """`profiles` without the serialised sketches and merge state: small JSON for `nbscale show`,
    the API and the panel."""
    if not isinstance(profiles, dict):
        return None
    values = {}
    for name, profile in (profiles.get("values") or {}).items():
        if not isinstance(profile, dict):
            continue
        columns = [{k: v for k, v in column.items() if k not in (*SKETCHES, "m2")}
                   for column in profile.get("columns") or [] if isinstance(column, dict)]
        values[name] = {**profile, "columns": columns} if "columns" in profile else dict(profile)
    return {**profiles, "values": values}


def stored_profiles(artifacts, key: str) -> dict | None:
    """The profiles kept in the manifest of the artifact stored under `key` (a cache hit's), or None."""
    try:
        profiles = artifacts.manifest(key).get("profiles")
    except Exception:  # noqa: BLE001 - gone or damaged: the step's row has no profiles, nothing more
        return None
    return profiles if isinstance(profiles, dict) else None

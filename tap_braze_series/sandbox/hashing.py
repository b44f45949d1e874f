"""Deterministic draws: every number and id of the sandbox is a blake2b hash of its keys.

The same keys always give the same draw, so a workspace, its values and its faults are
the same every run and the tests can compute what the server answers.
"""

from __future__ import annotations

import hashlib
import uuid


def digest(parts: tuple, size: int) -> bytes:
    """The unkeyed hash of ``repr(parts)`` (the faults' and points' draws)."""
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=size).digest()


def fraction(raw: bytes) -> float:
    """Bytes read as a fraction of their range, in [0, 1)."""
    return int.from_bytes(raw, "big") / 2 ** (8 * len(raw))


def uniform(*parts: object) -> float:
    """A uniform draw in [0, 1) from ``parts`` (seed included by the caller)."""
    return fraction(digest(parts, 8))


def _split(raw: bytes) -> list[float]:
    return [fraction(raw[i : i + 4]) for i in range(0, len(raw), 4)]


class Hasher:
    """Uniforms in [0, 1) and UUIDs from the seed and any tuple of keys (keyed blake2b)."""

    def __init__(self, seed: int) -> None:
        self._key = hashlib.blake2b(repr(("braze-sandbox", seed)).encode(), digest_size=32).digest()

    def digest(self, parts: tuple, size: int = 32) -> bytes:
        data = repr(parts).encode("utf-8")
        return hashlib.blake2b(data, digest_size=size, key=self._key).digest()

    def uniforms(self, n: int, *parts: object) -> list[float]:
        size = max(8, min(64, 4 * n))
        raw = self.digest(parts, size)
        out = _split(raw)
        while len(out) < n:  # more than 16 requested: chain
            out += _split(self.digest((*parts, len(out)), 64))
        return out[:n]

    def u(self, *parts: object) -> float:
        return self.uniforms(1, *parts)[0]

    def uuid(self, *parts: object) -> str:
        return str(uuid.UUID(bytes=self.digest(parts, 16), version=4))

"""An on-disk cache of diffusion spectra, so that the same rows are decomposed only once.

An entry is one ``.npz`` file holding the eigenvalues (float64) and a JSON string with the
fields that identify it (the *key fields*) and how it was computed. Its name is the SHA-256
of the canonical JSON of the key fields, and the key fields are compared again on reading,
so a renamed or colliding file is never taken for another entry.

Rules:

- Location: the ``cache`` argument, else ``$DSECLI_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/dsecli``, else ``~/.cache/dsecli``. Spectra live in ``<dir>/spectra/``.
- Writes follow the output policy (:func:`dsecli.report.writing.write_atomic`): atomic
  (temporary file in the same directory, then rename), so a reader sees the old entry, the
  complete new one, or none; concurrent writers of one entry write the same bytes.
- A missing entry is a miss. An unreadable, truncated or inconsistent entry is a miss with a
  :class:`~dsecli.errors.DseWarning` (the caller recomputes and overwrites it). A cache
  directory that cannot be created or written is reported with a warning; the computation
  goes on without the cache. The cache never makes a computation fail.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsecli.errors import DseWarning

__all__ = ["CACHE_FORMAT", "CacheWarning", "SpectrumCache", "default_cache_dir", "resolve_cache_dir", "cache_key"]

# Bumped whenever the stored layout or the meaning of a key field changes: old entries become misses.
CACHE_FORMAT = 1


class CacheWarning(DseWarning):
    """A cache entry could not be read or written; the value is (re)computed instead."""


def default_cache_dir() -> Path:
    """``$DSECLI_CACHE_DIR``, else ``$XDG_CACHE_HOME/dsecli``, else ``~/.cache/dsecli``."""
    env = os.environ.get("DSECLI_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):  # the XDG spec says relative values are to be ignored
        return Path(xdg) / "dsecli"
    return Path.home() / ".cache" / "dsecli"


def resolve_cache_dir(cache: bool | str | os.PathLike[str] | None) -> Path | None:
    """``False``/``None`` -> no cache; ``True`` -> :func:`default_cache_dir`; a path -> that directory."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return default_cache_dir()
    return Path(os.fspath(cache)).expanduser()


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)


def cache_key(fields: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``fields`` and the cache format."""
    return hashlib.sha256(_canonical({"cache_format": CACHE_FORMAT, **fields}).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedSpectrum:
    """An entry read back: eigenvalues (float64) and the metadata stored with them."""

    eigenvalues: np.ndarray
    meta: dict[str, Any]
    path: Path


class SpectrumCache:
    """Eigenvalue spectra stored under ``directory/spectra``, addressed by their key fields."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.spectra = self.directory / "spectra"

    def path_for(self, key: str) -> Path:
        return self.spectra / f"{key}.npz"

    def load(self, fields: dict[str, Any]) -> CachedSpectrum | None:
        """The entry for ``fields``, or None (a miss; a damaged entry also warns)."""
        key = cache_key(fields)
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            # read the bytes first: np.load leaks its file handle when the zip is damaged
            with open(path, "rb") as fh:
                raw = fh.read()
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                eig = np.array(npz["eigenvalues"], dtype=np.float64)
                meta = json.loads(str(npz["meta"][()]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            self._warn(f"cache entry {path} is unreadable ({type(exc).__name__}: {_first_line(exc)}); recomputing")
            return None
        problem = self._check(meta, fields, eig)
        if problem:
            self._warn(f"cache entry {path} is inconsistent ({problem}); recomputing")
            return None
        return CachedSpectrum(eig, meta, path)

    @staticmethod
    def _check(meta: Any, fields: dict[str, Any], eig: np.ndarray) -> str | None:
        if not isinstance(meta, dict):
            return "metadata is not an object"
        if meta.get("cache_format") != CACHE_FORMAT:
            return f"format {meta.get('cache_format')!r}, expected {CACHE_FORMAT}"
        if meta.get("key_fields") != json.loads(_canonical(fields)):
            return "its key fields differ from the request"
        n = meta.get("n_eigenvalues")
        if eig.ndim != 1 or eig.shape[0] != n:
            return f"{eig.shape} eigenvalues stored, metadata says {n}"
        if not np.all(np.isfinite(eig)):
            return "non-finite eigenvalues"
        return None

    def store(self, fields: dict[str, Any], eigenvalues: np.ndarray, meta: dict[str, Any]) -> Path | None:
        """Write the entry atomically; returns its path, or None (with a warning) if it could not be written."""
        from dsecli.report.writing import write_atomic

        eig = np.ascontiguousarray(eigenvalues, dtype=np.float64)
        full = {**meta, "cache_format": CACHE_FORMAT, "key_fields": json.loads(_canonical(fields)),
                "n_eigenvalues": int(eig.shape[0])}
        buf = io.BytesIO()
        np.savez(buf, eigenvalues=eig, meta=np.array(_canonical(full)))
        path = self.path_for(cache_key(fields))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, buf.getvalue(), name="cache entry")
        except Exception as exc:  # noqa: BLE001 - a cache must never make the computation fail
            self._warn(f"could not write the cache entry {path} ({type(exc).__name__}: {_first_line(exc)}); "
                       "continuing without caching (set --cache-dir or DSECLI_CACHE_DIR, or use --no-cache)")
            return None
        return path

    @staticmethod
    def _warn(message: str) -> None:
        warnings.warn(message, CacheWarning, stacklevel=3)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]

"""Input specs of many arrays: paths, globs, key patterns inside a file, ``@list`` files.

:func:`expand_inputs` turns specs into :class:`BatchInput` values (what ``dse batch`` runs over):

- a path: ``emb.npy``, ``run.h5:/grp/ds`` (any reader of :func:`dsecli.inputs.readers.open_array`);
- a shell glob on file names: ``'runs/*.npy'`` (sorted naturally: ``ep2`` before ``ep10``);
- a folder: ``runs/``, the array files directly in it (any extension of
  :data:`dsecli.inputs.readers.EXTENSIONS`, zarr stores included), sorted naturally;
- a key pattern inside a file: ``run.h5:/true/epoch_*/embeddings`` (:func:`fnmatch.fnmatchcase`
  on the dataset paths of an HDF5 file, or on the keys of an ``.npz``/``.pt`` file; ``*`` also
  matches ``/``); both parts may be patterns (``'runs/*.h5:/emb'``);
- ``@list.txt``: one spec per line (blank lines and lines starting with ``#`` are skipped;
  relative paths are relative to the current directory).

Inputs keep the order of the specs; one spec's matches are sorted; repeats (the same real file
and key) are dropped. A checkpoint number is read from the dataset path or the file name
(:func:`checkpoint_of`: ``epoch_004`` -> 4) and the series is that path with the number
replaced by ``*``.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from dsecli.errors import DseError, InputError
from dsecli.inputs.readers import split_spec
from dsecli.inputs.readers._common import natural_key

__all__ = ["BatchInput", "InputFailure", "expand_inputs", "checkpoint_of"]

_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class BatchInput:
    """One array of a batch.

    file : the path as the user wrote it (or as a glob matched it); dataset : the key inside
    the file (HDF5 dataset path, npz/pt key) or None; index : position in the expanded list;
    n_total : its number of rows; checkpoint, series : see the module docstring.
    """

    file: str
    dataset: str | None
    index: int
    n_total: int
    checkpoint: int | None
    series: str

    @property
    def label(self) -> str:
        return f"{self.file}:{self.dataset}" if self.dataset else self.file

    @property
    def spec(self) -> str:
        """What :func:`dsecli.inputs.readers.open_array` opens, with an absolute path (worker processes, Dask)."""
        path = os.path.abspath(self.file)
        return f"{path}:{self.dataset}" if self.dataset else path

    @property
    def identity(self) -> str:
        """The input in a row's key: real path and dataset, so ``./a.h5`` and ``a.h5`` are one input."""
        path = os.path.realpath(self.file)
        return f"{path}:{self.dataset}" if self.dataset else path


@dataclass(frozen=True)
class InputFailure:
    """An input that could not be opened (collected by :func:`expand_inputs` when asked to go on)."""

    input: str
    error: DseError


_CKPT = re.compile(r"(?i)(?<![a-z])(epoch|epochs|ep|step|steps|iteration|iter|it|checkpoint|ckpt)([_\-=]?)(\d+)(?!\d)")


def checkpoint_of(text: str) -> tuple[str, int | None, str | None]:
    """Split a path into (pattern, number, kind): ``"/true/epoch_012/emb"`` -> ``("/true/epoch_*/emb", 12, "epoch")``.

    The last epoch/step/iteration/checkpoint number in the text is used; without one the
    text is returned unchanged with ``(None, None)``.
    """
    matches = list(_CKPT.finditer(text))
    if not matches:
        return text, None, None
    m = matches[-1]
    kind = m.group(1).lower()
    kind = {"epochs": "epoch", "ep": "epoch", "steps": "step", "iter": "iteration", "it": "iteration",
            "ckpt": "checkpoint"}.get(kind, kind)
    pattern = text[: m.start(3)] + "*" + text[m.end(3):]
    return pattern, int(m.group(3)), kind


def _read_list_file(spec: str) -> list[str]:
    path = spec[1:]
    if not path:
        raise InputError("`inputs`: '@' must be followed by a list file name (@list.txt)")
    if not os.path.exists(path):
        raise InputError(f"{path}: list file not found (given as {spec})")
    if os.path.isdir(path):
        raise InputError(f"{path}: list file is a directory (given as {spec})")
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: list file is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the list file ({exc.strerror or exc})") from None
    specs = [s.strip() for s in lines]
    specs = [s for s in specs if s and not s.startswith("#")]
    for s in specs:
        if s.startswith("@"):
            raise InputError(f"{path}: list files cannot name other list files; got {s!r}")
    if not specs:
        raise InputError(f"{path}: list file names no inputs (one spec per line; # starts a comment)")
    return specs


def _keys_of(path: str) -> list[str]:
    from dsecli.inputs.readers import list_arrays

    return [str(a["key"]) for a in list_arrays(path) if a.get("key") is not None]


def _same_file(a: str, b: str | None) -> bool:
    try:
        return b is not None and os.path.samefile(a, b)
    except OSError:
        return False


def _files_of(path_part: str, exclude: str | None) -> list[str]:
    from dsecli.inputs.readers import EXTENSIONS, folder_files
    from dsecli.inputs.readers.zarr import is_zarr_dir

    if os.path.isdir(path_part) and not path_part.lower().rstrip("/").endswith(".zarr") and not is_zarr_dir(path_part):
        files = [p for p in folder_files(path_part) if not _same_file(p, exclude)]
        if not files:
            raise InputError(f"`inputs`: the folder {path_part} holds no array files ({', '.join(EXTENSIONS)})")
        return files
    if _GLOB_CHARS.search(path_part) and not os.path.exists(path_part):
        matched = [p for p in glob.glob(path_part) if os.path.isfile(p)]
        if not matched:
            raise InputError(f"`inputs`: no file matches {path_part!r}")
        files = sorted((p for p in matched if not _same_file(p, exclude)), key=natural_key)
        if not files:
            raise InputError(f"`inputs`: {path_part!r} matches only the results file {exclude}")
        return files
    return [path_part]


def _keys_matching(file: str, key_part: str) -> list[str]:
    from dsecli.inputs.readers import HDF5_EXTENSIONS, check_file

    check_file(file)
    hdf5 = os.path.splitext(file)[1].lower() in HDF5_EXTENSIONS
    pattern = key_part if not hdf5 or key_part.startswith("/") else "/" + key_part
    keys = _keys_of(file)
    matched = sorted((k for k in keys if fnmatch.fnmatchcase(k, pattern)), key=natural_key)
    if not matched:
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        what = "dataset" if hdf5 else "key"
        raise InputError(f"{file}: no {what} matches {key_part!r}; {what}s: {shown or '(none)'}")
    return matched


def _checkpoint(file: str, dataset: str | None) -> tuple[int | None, str]:
    d_pat, d_num, _ = checkpoint_of(dataset or "")
    f_pat, f_num, _ = checkpoint_of(os.path.basename(file))
    number = d_num if d_num is not None else f_num
    series = f"{f_pat}:{d_pat}" if dataset else f_pat
    return number, series


def _flatten_specs(specs: str | os.PathLike[str] | Sequence[str]) -> list[str]:
    if isinstance(specs, (str, os.PathLike)):
        specs = [os.fspath(specs)]
    flat: list[str] = []
    for spec in specs:
        spec = os.fspath(spec).strip()
        if not spec:
            raise InputError("`inputs`: got an empty input spec")
        flat.extend(_read_list_file(spec) if spec.startswith("@") else [spec])
    if not flat:
        raise InputError("`inputs`: give at least one input (a file, a glob, file.h5:/pattern or @list.txt)")
    return flat


def _identity(spec: str | None) -> tuple[str, str | None] | None:
    """(real path, dataset key) of the array ``spec`` names, None when it names none that opens."""
    if spec is None or spec == "-":
        return None
    from dsecli.inputs.readers import open_array

    try:
        src = open_array(spec)
    except DseError:  # the batch reports an unusable reference itself
        return None
    return os.path.realpath(split_spec(spec)[0]), src.key


def expand_inputs(specs: str | os.PathLike[str] | Sequence[str], *,
                  failures: list[InputFailure] | None = None,
                  exclude: str | os.PathLike[str] | None = None,
                  reference: str | None = None) -> list[BatchInput]:
    """Expand globs, key patterns and ``@list`` files into inputs, each opened once to check it.

    Raises :class:`~dsecli.errors.InputError` when a pattern matches nothing or a list file is
    missing or empty (the specs themselves are wrong). An input that cannot be opened (missing,
    unreadable, not an array) raises too, unless ``failures`` is a list: then it is appended
    there as an :class:`InputFailure` and skipped, so a batch can go on past it. A file a glob
    matches that is ``exclude`` (the batch's results file, by any path) is left out; named
    explicitly, it stays an input. So is the array of ``reference`` (the batch's ``--ref``, by
    any path) when a folder, a glob or a key pattern matches it: a reference is not measured as
    an input unless named as one.

    Returns
    -------
    list of BatchInput
        One per array, in the order given (a glob's matches sorted naturally, repeats dropped),
        each with its file, dataset key, index, number of rows and checkpoint number.
    """
    from dsecli.inputs.readers import open_array

    seen: set[tuple[str, str | None]] = set()
    inputs: list[BatchInput] = []
    ref_ident = _identity(reference)
    for spec in _flatten_specs(specs):
        if spec == "-":
            raise InputError("`inputs`: standard input (-) cannot be a batch input; save it to a file")
        path_part, key_part = split_spec(spec)
        key_pattern = key_part is not None and bool(_GLOB_CHARS.search(key_part))
        files = _files_of(path_part, os.fspath(exclude) if exclude is not None else None)
        named = not key_pattern and files == [path_part]  # one array named as such: always an input
        for file in files:
            try:
                keys: list[str | None] = list(_keys_matching(file, key_part)) if key_pattern else [key_part]
            except DseError as exc:
                if failures is None:
                    raise
                failures.append(InputFailure(f"{file}:{key_part}", exc))
                continue
            for key in keys:
                label = f"{file}:{key}" if key else file
                try:
                    src = open_array(label)
                except DseError as exc:
                    if failures is None:
                        raise
                    failures.append(InputFailure(label, exc))
                    continue
                dataset = src.key
                ident = (os.path.realpath(file), dataset)
                if ident in seen or (ident == ref_ident and not named):
                    continue
                seen.add(ident)
                number, series = _checkpoint(file, dataset)
                inputs.append(BatchInput(file, dataset, len(inputs), int(src.shape[0]) if src.shape else 0,
                                         number, series))
    return inputs

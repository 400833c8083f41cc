"""Tests aimed at one-line slips: each pins a boundary, a closed form or a field that a small edit
of the library (``<`` for ``<=``, N for D, a dropped term, a wrong row number) would break."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from dsecli.errors import InputError
from dsecli.report.writing import output_target, write_atomic

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes and umask")


# --- 1. the mode of a newly written output file --------------------------------------------------

@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_output_file_gets_0666_less_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "new.json"
        write_atomic(out, "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask
    assert out.read_text() == "{}\n"


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o755])
def test_replaced_output_file_keeps_its_mode(tmp_path, mode):
    out = tmp_path / "old.json"
    out.write_text("old\n")
    os.chmod(out, mode)
    old = os.umask(0o077)
    try:
        write_atomic(out, "new\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == mode
    assert out.read_text() == "new\n"


# --- 2. the file-name length boundary -------------------------------------------------------------

def _name_max(directory) -> int:
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        pytest.skip("pathconf(PC_NAME_MAX) is not available here")
    if not limit or limit > 4096:
        pytest.skip(f"no usable NAME_MAX here ({limit})")
    return limit


def test_output_name_of_exactly_name_max_bytes_is_written(tmp_path):
    limit = _name_max(tmp_path)
    name = "a" * (limit - 5) + ".json"
    assert len(os.fsencode(name)) == limit
    out = tmp_path / name
    assert output_target(out).kind == "new"
    write_atomic(out, "{}\n")
    assert out.read_text() == "{}\n"


def test_output_name_one_byte_over_name_max_is_refused_with_the_limit(tmp_path):
    limit = _name_max(tmp_path)
    name = "a" * (limit - 4) + ".json"
    assert len(os.fsencode(name)) == limit + 1
    with pytest.raises(InputError, match=rf"is {limit + 1} bytes long; this file system allows at most {limit}\b"):
        output_target(tmp_path / name)
    with pytest.raises(InputError, match=rf"at most {limit}\b"):
        write_atomic(tmp_path / name, "{}\n")
    assert list(tmp_path.iterdir()) == []


def test_output_name_length_counts_bytes_not_characters(tmp_path):
    limit = _name_max(tmp_path)
    if sys.getfilesystemencoding().lower().replace("-", "") != "utf8":
        pytest.skip("file names are not UTF-8 here")
    # "é" is two bytes in UTF-8: limit // 2 + 1 of them is over the limit, although fewer characters
    name = "é" * (limit // 2 + 1)
    assert len(name) <= limit < len(os.fsencode(name))
    with pytest.raises(InputError, match=r"bytes long"):
        output_target(tmp_path / name)

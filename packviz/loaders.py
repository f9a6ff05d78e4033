"""Read load matrices from every format users bring, or say exactly why not.

``read_loads(source, name)`` takes a path or the bytes of an upload plus its
file name and returns a :class:`LoadedMatrix` whose ``weight`` is a float64
[layers, items] tensor. Every refusal raises :class:`LoadError` (a
ValueError) naming the file and the place of the problem. Nothing a user
uploads is unpickled: NumPy files load with ``allow_pickle=False`` and torch
files with ``weights_only=True``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_MAX_VALUES = 10_000_000
INDEX_HEADERS = {"", "#", "layer", "layers", "layer_id", "index", "idx", "id", "name", "row"}
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None, ".ssv": ";"}
SUFFIXES = (*TEXT_SUFFIXES, ".npy", ".npz", ".pt", ".pth", ".json")


class LoadError(ValueError):
    """A file that cannot be used as a load matrix; the message says why and where."""


@dataclass(frozen=True)
class LoadedMatrix:
    weight: torch.Tensor
    description: str
    source: str
    item_names: tuple[str, ...] | None = None
    time_axis: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)


def read_loads(
    source: str | Path | bytes,
    name: str | None = None,
    *,
    keep_time_axis: bool = False,
    array_name: str | None = None,
    max_values: int = DEFAULT_MAX_VALUES,
) -> LoadedMatrix:
    """Read a load matrix from a path, or from ``bytes`` with their file ``name``.

    keep_time_axis: for [steps, layers, items] data (SGLang dumps), also return
        the steps in ``time_axis``; ``weight`` is always their sum.
    array_name: which array of a multi-array ``.npz`` to use.
    max_values: refuse matrices with more values than this.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        try:
            data = path.read_bytes()
        except OSError as error:
            raise LoadError(f"{name}: cannot be read ({error.strerror or error})") from None
    else:
        data = bytes(source)
        name = name or "upload"
    suffix = Path(name).suffix.lower()
    if not data.strip():
        raise LoadError(f"{name}: the file is empty")
    reader = _READERS.get(suffix)
    if reader is None:
        raise LoadError(f"{name}: unknown file type {suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}")
    return reader(data, name, keep_time_axis=keep_time_axis, array_name=array_name, max_values=max_values)


# Delimited text ----------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_text(data: bytes, name: str, *, max_values: int, **_: object) -> LoadedMatrix:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LoadError(f"{name}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x})") from None
    if "\x00" in text:
        raise LoadError(f"{name}: holds NUL bytes, so it is not a text table")
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if len(text) > 40 * max_values:
        raise LoadError(f"{name}: {len(text)} characters is more than a {max_values}-value matrix can hold")
    delimiter = TEXT_SUFFIXES.get(Path(name).suffix.lower()) or _sniff_delimiter(lines)
    rows = list(csv.reader(lines, delimiter=delimiter, skipinitialspace=True))
    if not rows:
        raise LoadError(f"{name}: the file is empty")
    rows = [[cell.strip() for cell in row] for row in rows]
    for number, row in enumerate(rows, start=1):
        if not any(row):
            raise LoadError(f"{name}: row {number} is blank")

    header = _looks_like_header(rows[0], rows[1] if len(rows) > 1 else None)
    body_start = 1 if header else 0
    body = rows[body_start:]
    if not body:
        raise LoadError(f"{name}: only a header row, no data rows")
    first_cells = [row[0] for row in body]
    has_index = (header and rows[0][0].lower() in INDEX_HEADERS) or not any(
        _is_number(cell) for cell in first_cells
    )
    column_start = 1 if has_index else 0
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise LoadError(
                f"{name}: ragged rows: row {number} has {len(row)} values, row 1 has {width}"
            )
    values = np.empty((len(body), width - column_start), dtype=np.float64)
    if values.size > max_values:
        raise LoadError(f"{name}: {values.size} values is more than the limit of {max_values}")
    for row_offset, row in enumerate(body):
        for column, cell in enumerate(row[column_start:], start=column_start):
            try:
                value = float(cell)
            except ValueError:
                where = f"row {body_start + row_offset + 1}, column {column + 1}"
                if not cell:
                    raise LoadError(f"{name}: {where} is empty") from None
                raise LoadError(f"{name}: {where}: {cell[:40]!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                where = f"row {body_start + row_offset + 1}, column {column + 1}"
                what = "is not a finite number" if not math.isfinite(value) else "is negative"
                raise LoadError(f"{name}: {where}: {cell[:40]!r} {what}")
            values[row_offset, column - column_start] = value
    item_names = tuple(rows[0][column_start:]) if header else None
    kind = {",": "comma", "\t": "tab", ";": "semicolon"}.get(delimiter, repr(delimiter))
    notes = [f"{kind}-separated text"]
    if header:
        notes.append("header row")
    if has_index:
        notes.append("index column")
    weight = _validated(values, name, max_values)
    return LoadedMatrix(weight, _describe(weight, ", ".join(notes)), name, item_names)


def _sniff_delimiter(lines: list[str]) -> str:
    sample = lines[:20]
    counts = {d: min((line.count(d) for line in sample), default=0) for d in (",", "\t", ";")}
    best = max(counts, key=counts.get)
    if counts[best] > 0:
        return best
    return ","


def _looks_like_header(row: list[str], next_row: list[str] | None) -> bool:
    text_cells = [cell for cell in row if not _is_number(cell)]
    if len(text_cells) * 2 >= len(row):
        return True
    # "layer,0,1,2,...": a label then numeric item names, over rows whose first
    # cell is a number (where every row starts with a label, it is a label column)
    labelled_rows = next_row is not None and not _is_number(next_row[0])
    return not _is_number(row[0]) and all(cell.isdigit() for cell in row[1:]) and not labelled_rows


# NumPy -----------------------------------------------------------------------------


def _check_npy_header(stream: io.BytesIO, name: str, max_values: int) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, OSError) as error:
        raise LoadError(f"{name}: not a valid .npy array ({error})") from None
    count = math.prod(shape)
    if count > max_values:
        raise LoadError(
            f"{name}: declares shape {tuple(shape)} ({count} values), more than the limit of {max_values}"
        )
    if dtype.hasobject:
        raise LoadError(f"{name}: holds Python objects (pickled data), which packviz never loads")
    return tuple(shape), dtype


def _read_npy(data: bytes, name: str, *, max_values: int, **_: object) -> LoadedMatrix:
    stream = io.BytesIO(data)
    _check_npy_header(stream, name, max_values)
    stream.seek(0)
    try:
        array = np.load(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise LoadError(f"{name}: not a valid .npy array ({error})") from None
    weight = _validated(array, name, max_values)
    return LoadedMatrix(weight, _describe(weight, f"NumPy {array.dtype} array"), name)


def _read_npz(data: bytes, name: str, *, array_name: str | None, max_values: int, **_: object) -> LoadedMatrix:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise LoadError(f"{name}: not a valid .npz archive") from None
    members = [m for m in archive.namelist() if m.endswith(".npy")]
    keys = [m[: -len(".npy")] for m in members]
    if not keys:
        raise LoadError(f"{name}: the archive holds no arrays")
    if array_name is None:
        if len(keys) > 1:
            raise LoadError(f"{name}: holds {len(keys)} arrays ({', '.join(keys)}); say which one to use")
        array_name = keys[0]
    if array_name not in keys:
        raise LoadError(f"{name}: has no array {array_name!r}; it holds {', '.join(keys)}")
    member = archive.read(array_name + ".npy")
    loaded = _read_npy(member, f"{name}[{array_name}]", max_values=max_values)
    return LoadedMatrix(loaded.weight, loaded.description, name)


# torch and JSON ------------------------------------------------------------------------


def _read_pt(data: bytes, name: str, *, keep_time_axis: bool, max_values: int, **_: object) -> LoadedMatrix:
    try:
        content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a refused or broken file
        text = str(error)
        if isinstance(error, pickle.UnpicklingError) or "weights_only" in text.lower():
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" (it names {found.group(1)})" if found else ""
            raise LoadError(
                f"{name}: refused: it holds Python objects, not plain tensors{what}, and packviz never "
                "unpickles uploaded code"
            ) from None
        raise LoadError(f"{name}: not a readable torch file ({type(error).__name__})") from None
    return _from_content(content, name, "torch file", keep_time_axis, max_values)


def _read_json(data: bytes, name: str, *, keep_time_axis: bool, max_values: int, **_: object) -> LoadedMatrix:
    try:
        content = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise LoadError(f"{name}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise LoadError(f"{name}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    return _from_content(content, name, "JSON", keep_time_axis, max_values)


def _from_content(content: object, name: str, kind: str, keep_time_axis: bool, max_values: int) -> LoadedMatrix:
    what = kind
    if isinstance(content, dict):
        if "logical_count" not in content:
            keys = ", ".join(str(k) for k in list(content)[:10])
            hint = " (that is a placement, not loads)" if "physical_to_logical_map" in content else ""
            raise LoadError(f"{name}: the {kind} holds a dict without 'logical_count'{hint}; its keys: {keys}")
        content = content["logical_count"]
        what = f"{kind}, logical_count"
    array = _as_array(content, name)
    time_axis = None
    if array.ndim == 3:
        if array.size > max_values:
            raise LoadError(f"{name}: {array.size} values is more than the limit of {max_values}")
        steps = torch.as_tensor(_validated_values(array, name), dtype=torch.float64)
        time_axis = steps if keep_time_axis else None
        array = array.sum(axis=0)
        what += f", summed over {steps.shape[0]} steps"
    weight = _validated(array, name, max_values)
    return LoadedMatrix(weight, _describe(weight, what), name, time_axis=time_axis)


def _as_array(content: object, name: str) -> np.ndarray:
    if isinstance(content, torch.Tensor):
        if content.is_complex() or content.dtype == torch.bool:
            raise LoadError(f"{name}: holds {content.dtype} values, not loads")
        return content.detach().to(torch.float64).numpy()
    if isinstance(content, (int, float)):
        raise LoadError(f"{name}: holds a single number, not a matrix of loads")
    if not isinstance(content, list):
        raise LoadError(f"{name}: expected a list of rows of numbers, found {type(content).__name__}")
    if content and all(isinstance(row, list) for row in content):
        rows = content
    elif all(not isinstance(value, (list, dict)) for value in content):
        rows = [content]
    else:
        raise LoadError(f"{name}: expected a list of rows of numbers, found a mix of lists and values")
    if rows and all(isinstance(row, list) and row and isinstance(row[0], list) for row in rows):
        return np.asarray(_nested(rows, name), dtype=np.float64)
    return np.asarray(_rows(rows, name), dtype=np.float64)


def _nested(blocks: list, name: str) -> list:
    shapes = {(len(block), len(block[0]) if block else 0) for block in blocks}
    if len(shapes) != 1:
        raise LoadError(f"{name}: the steps have different shapes: {sorted(shapes)}")
    return [_rows(block, f"{name} step {index + 1}") for index, block in enumerate(blocks)]


def _rows(rows: list, name: str) -> list[list[float]]:
    width = len(rows[0]) if rows else 0
    out = []
    for r, row in enumerate(rows, start=1):
        if not isinstance(row, list):
            raise LoadError(f"{name}: row {r} is not a list of numbers")
        if len(row) != width:
            raise LoadError(f"{name}: ragged rows: row {r} has {len(row)} values, row 1 has {width}")
        values = []
        for c, value in enumerate(row, start=1):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise LoadError(f"{name}: row {r}, column {c}: {str(value)[:40]!r} is not a number")
            values.append(float(value))
        out.append(values)
    return out


# Shared checks ------------------------------------------------------------------------------


def _validated_values(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise LoadError(f"{name}: holds {array.dtype} values, not numbers")
    if array.dtype.kind == "b":
        raise LoadError(f"{name}: holds booleans, not loads")
    values = array.astype(np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        value = values[position]
        where = ", ".join(f"{axis} {index + 1}" for axis, index in zip(_axes(values.ndim), position))
        what = "is not a number" if math.isnan(value) else "is infinite" if math.isinf(value) else "is negative"
        raise LoadError(f"{name}: {where}: {value!r} {what} ({int(bad.sum())} bad value(s) in all)")
    return values


def _axes(ndim: int) -> tuple[str, ...]:
    return {1: ("column",), 2: ("row", "column"), 3: ("step", "row", "column")}.get(ndim, ("axis",) * ndim)


def _validated(array: np.ndarray, name: str, max_values: int) -> torch.Tensor:
    array = np.asarray(array)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise LoadError(
            f"{name}: expected a [layers, items] matrix, found {array.ndim} dimensions of shape {tuple(array.shape)}"
        )
    if array.size > max_values:
        raise LoadError(f"{name}: {array.size} values is more than the limit of {max_values}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise LoadError(f"{name}: the matrix is empty (shape {tuple(array.shape)})")
    if array.shape[1] < 2:
        raise LoadError(
            f"{name}: each layer needs at least 2 items, found shape {tuple(array.shape)} "
            "(one row per layer, one column per item)"
        )
    return torch.from_numpy(_validated_values(array, name).copy())


def _describe(weight: torch.Tensor, what: str) -> str:
    layers, items = weight.shape
    integer = bool((weight == weight.round()).all())
    return (
        f"{layers} layer{'s' if layers != 1 else ''} x {items} items from {what}; "
        f"{'whole-number' if integer else 'real'} loads, total {float(weight.sum()):,.6g}"
    )


_READERS = {
    **{suffix: _read_text for suffix in TEXT_SUFFIXES},
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".pt": _read_pt,
    ".pth": _read_pt,
    ".json": _read_json,
}

"""Read load matrices from every format users bring, or say exactly why not.

``read_loads(source, name)`` takes a path or the bytes of an upload plus its
file name and returns a :class:`LoadedMatrix` whose ``weight`` is a float64
[layers, items] tensor. Every refusal raises :class:`LoadError` (a
ValueError) naming the file and the place of the problem. Nothing a user
uploads is unpickled: NumPy files load with ``allow_pickle=False`` and torch
files with ``weights_only=True``.

In ``.csv`` and ``.txt`` files the column separator is sniffed among ',', tab and ';': the one that splits
every row into the same number of cells, most of them numbers, and ',' on a tie. Files separated by ';'
(Excel's .csv where the decimal mark is ',') may write '1,5' for 1.5.
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
# None: the separator is sniffed from the content (Excel writes ";" into .csv files in many locales)
TEXT_SUFFIXES = {".csv": None, ".tsv": "\t", ".txt": None, ".ssv": ";"}
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

# Sniffed separators, in the order preferred when the content fits several equally well.
CANDIDATE_DELIMITERS = (",", "\t", ";")
DELIMITER_NAMES = {",": "','", "\t": "tabs", ";": "';'", " ": "spaces"}
SNIFF_LINES = 100
# A number written with a ',' in it (decimal comma or thousands separators), never a column name.
_COMMA_NUMBER = re.compile(r"[+-]?\d[\d.,]*,[\d.,]*(?:[eE][+-]?\d+)?")


def _number(cell: str, decimal_comma: bool) -> float | None:
    """The cell's value, or None when it is not a number; with ``decimal_comma`` '1,5' is 1.5."""
    if decimal_comma and "," in cell:
        # '1.234,5' and '1,234,5' carry thousands separators, which are refused rather than guessed at
        if "." in cell or cell.count(",") > 1:
            return None
        cell = cell.replace(",", ".")
    try:
        return float(cell)
    except ValueError:
        return None


def _quoted(cell: str) -> str:
    return repr(cell) if len(cell) <= 40 else repr(cell[:40]) + "..."


def _split(lines: list[str], delimiter: str, name: str) -> list[list[str]]:
    reader = csv.reader(lines, delimiter=delimiter, skipinitialspace=True)
    try:
        return [[cell.strip() for cell in row] for row in reader]
    except csv.Error as error:
        raise LoadError(f"{name}: row {reader.line_num}: {error}") from None


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
    suffix = Path(name).suffix.lower()
    fixed_delimiter = TEXT_SUFFIXES.get(suffix)
    delimiter = fixed_delimiter or _sniff_delimiter(lines)
    # Excel writes ';' between columns exactly where the locale writes ',' as the decimal mark; in
    # comma- or tab-separated files a comma inside a number is as likely a thousands separator.
    decimal_comma = delimiter == ";"
    rows = _split(lines, delimiter, name)
    if not rows:
        raise LoadError(f"{name}: the file is empty")
    for number, row in enumerate(rows, start=1):
        if not any(row):
            raise LoadError(f"{name}: row {number} is blank")
    _refuse_unsplit_rows(rows, name, delimiter, decimal_comma, None if fixed_delimiter is None else suffix)

    header = _looks_like_header(rows[0], rows[1] if len(rows) > 1 else None, decimal_comma)
    body_start = 1 if header else 0
    body = rows[body_start:]
    if not body:
        raise LoadError(f"{name}: only a header row, no data rows")
    first_cells = [row[0] for row in body]
    has_index = (header and rows[0][0].lower() in INDEX_HEADERS) or all(
        _is_label(cell, decimal_comma) for cell in first_cells
    )
    column_start = 1 if has_index else 0
    width = len(rows[0])
    if width == column_start:
        raise LoadError(
            f"{name}: column 1 is read as labels (row 1: {_quoted(rows[0][0])}) and no column of loads follows it"
        )
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise LoadError(
                f"{name}: ragged rows: row {number} has {len(row)} values, row 1 has {width}"
            )
    values = np.empty((len(body), width - column_start), dtype=np.float64)
    if values.size > max_values:
        raise LoadError(f"{name}: {values.size} values is more than the limit of {max_values}")
    first_comma_decimal = first_dot_decimal = None
    for row_offset, row in enumerate(body):
        for column, cell in enumerate(row[column_start:], start=column_start):
            where = f"row {body_start + row_offset + 1}, column {column + 1}"
            value = _number(cell, decimal_comma)
            if value is None:
                if not cell:
                    raise LoadError(f"{name}: {where} is empty")
                hint = _not_a_number_hint(cell, delimiter)
                raise LoadError(f"{name}: {where}: {_quoted(cell)} is not a number{hint}")
            if not math.isfinite(value) or value < 0:
                what = "is not a finite number" if not math.isfinite(value) else "is negative"
                raise LoadError(f"{name}: {where}: {_quoted(cell)} {what}")
            if decimal_comma and first_comma_decimal is None and "," in cell:
                first_comma_decimal = (where, cell)
            if decimal_comma and first_dot_decimal is None and "." in cell:
                first_dot_decimal = (where, cell)
            values[row_offset, column - column_start] = value
    if first_comma_decimal and first_dot_decimal:
        # in a decimal-comma file '1.500' most likely means 1500, so neither reading is safe
        (dot_where, dot_cell), (comma_where, comma_cell) = first_dot_decimal, first_comma_decimal
        raise LoadError(
            f"{name}: {dot_where}: {_quoted(dot_cell)} has a '.' but {comma_where}: {_quoted(comma_cell)} writes "
            "decimals with ','; write every number with the same decimal mark and no thousands separators"
        )
    item_names = tuple(rows[0][column_start:]) if header else None
    kind = {",": "comma", "\t": "tab", ";": "semicolon"}.get(delimiter, repr(delimiter))
    notes = [f"{kind}-separated text"]
    if first_comma_decimal:
        notes.append("decimal commas")
    if header:
        notes.append("header row")
    if has_index:
        notes.append("index column")
    weight = _validated(values, name, max_values)
    return LoadedMatrix(weight, _describe(weight, ", ".join(notes)), name, item_names)


def _sniff_delimiter(lines: list[str]) -> str:
    """The candidate that splits every sampled row into the same number (>1) of cells, most of them numbers.

    Where none does, the one that splits the most rows, so that the rows which differ are the ones reported;
    ',' where nothing splits at all.
    """
    sample = [line for line in lines[:SNIFF_LINES] if line.strip()]
    splits = {}
    for delimiter in CANDIDATE_DELIMITERS:
        try:
            splits[delimiter] = _split(sample, delimiter, "sample")
        except LoadError:
            continue
    even = [d for d, rows in splits.items() if rows and len(rows[0]) > 1 and len({len(r) for r in rows}) == 1]
    if even:
        # max() keeps the first of equals, so ties go to the preferred order
        return max(even, key=lambda d: _numeric_share(splits[d][1:] or splits[d], d == ";"))
    return max(CANDIDATE_DELIMITERS, key=lambda d: sum(len(row) > 1 for row in splits.get(d, [])))


def _numeric_share(rows: list[list[str]], decimal_comma: bool) -> float:
    cells = [cell for row in rows for cell in row]
    return sum(_number(cell, decimal_comma) is not None for cell in cells) / max(len(cells), 1)


def _refuse_unsplit_rows(
    rows: list[list[str]], name: str, delimiter: str, decimal_comma: bool, fixed_by_suffix: str | None
) -> None:
    """Refuse a row left as one cell that is no number because its separator is not the file's."""
    widths = [len(row) for row in rows]
    reference = next((number for number, width in enumerate(widths, start=1) if width > 1), None)
    separator = DELIMITER_NAMES[delimiter]
    for number, row in enumerate(rows, start=1):
        if len(row) != 1 or _number(row[0], decimal_comma) is not None:
            continue
        cell = row[0]
        other = next((d for d in CANDIDATE_DELIMITERS if d != delimiter and d in cell), None)
        if other is None and "|" in cell:
            other = "|"
        words = cell.split()
        if other is None and len(words) > 1 and all(_number(word, decimal_comma) is not None for word in words):
            other = " "
        if reference is not None:
            if reference == 1 and any(_is_label(cell, decimal_comma) for cell in rows[0]):
                place = "this file's header (row 1)"
            else:
                place = f"row {reference}"
            if other:
                uses = f"row {number} uses {DELIMITER_NAMES.get(other, repr(other))} instead; use one throughout"
            else:
                uses = f"row {number} holds no {separator}"
            raise LoadError(
                f"{name}: row {number} is one cell {_quoted(cell)}: the columns are separated by {separator} in "
                f"{place}, but {uses}"
            )
        if other is None:
            continue  # one cell in a one-column file: the shape and number checks say what is wrong
        if fixed_by_suffix:
            expected = f"a {fixed_by_suffix} file separates its columns with {separator}"
        else:
            expected = "packviz found no ',', tab or ';' that splits it into columns"
        found = f"; it seems to use {DELIMITER_NAMES.get(other, repr(other))}" if other else ""
        raise LoadError(f"{name}: row {number} is one cell {_quoted(cell)}: {expected}{found}")


def _not_a_number_hint(cell: str, delimiter: str) -> str:
    if _COMMA_NUMBER.fullmatch(cell):
        if delimiter == ";":
            return " (write numbers without thousands separators)"
        return (
            " (write decimals with '.' and no thousands separators; a decimal ',' is read only in files whose "
            "columns are separated by ';')"
        )
    others = " and ".join(DELIMITER_NAMES[d] for d in CANDIDATE_DELIMITERS if d != delimiter and d in cell)
    if others:
        return f" (it holds {others}, but this file's columns are separated by {DELIMITER_NAMES[delimiter]})"
    return ""


def _is_label(cell: str, decimal_comma: bool) -> bool:
    """Text that names a row or column; a number written with a stray ',' is a bad number, not a name."""
    return _number(cell, decimal_comma) is None and not _COMMA_NUMBER.fullmatch(cell)


def _looks_like_header(row: list[str], next_row: list[str] | None, decimal_comma: bool) -> bool:
    text_cells = [cell for cell in row if _is_label(cell, decimal_comma)]
    if len(text_cells) * 2 >= len(row):
        return True
    # "layer,0,1,2,...": a label then numeric item names, over rows whose first
    # cell is a number (where every row starts with a label, it is a label column)
    labelled_rows = next_row is not None and _is_label(next_row[0], decimal_comma)
    return _is_label(row[0], decimal_comma) and all(cell.isdigit() for cell in row[1:]) and not labelled_rows


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


# torch.save writes a zip archive; before torch 1.6 it wrote a pickle that opens with this magic number
TORCH_ZIP_MAGIC = b"PK\x03\x04"
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _read_pt(data: bytes, name: str, *, keep_time_axis: bool, max_values: int, **_: object) -> LoadedMatrix:
    if not data.startswith((TORCH_ZIP_MAGIC, TORCH_LEGACY_MAGIC)):
        # torch's own message for such bytes speaks of unpickling, though nothing here is a pickle
        raise LoadError(f"{name}: not a readable torch file: torch.save writes a zip archive, and this file starts "
                        f"with the bytes {data[:4].hex(' ')}, not 'PK'")
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
        what = "a zip archive, but not one torch.save wrote" if data.startswith(TORCH_ZIP_MAGIC) else "broken"
        raise LoadError(f"{name}: not a readable torch file: {what} ({type(error).__name__})") from None
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
        value = float(values[position])
        where = ", ".join(f"{axis} {index}" for axis, index in zip(_axes(values.ndim), position))
        what = "NaN" if math.isnan(value) else f"{value:g}" if math.isinf(value) else f"a negative load, {value:g},"
        count = int(bad.sum())
        more = f"; {count} values in all are NaN, infinite or negative" if count > 1 else ""
        raise LoadError(f"{name}: {what} at {where} (counted from 0){more}")
    return values


def _axes(ndim: int) -> tuple[str, ...]:
    return {1: ("expert",), 2: ("layer", "expert"), 3: ("step", "layer", "expert")}.get(ndim, ("axis",) * ndim)


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
        f"{'whole-number' if integer else 'real'} loads, total {_total(float(weight.sum()), integer)}"
    )


def _total(total: float, integer: bool) -> str:
    """Digits a person reads, never an exponent for a token count: 30,408,705, not 3.04087e+07."""
    if integer or total >= 1e6:
        return f"{total:,.0f}"
    return f"{total:,.2f}" if total >= 100 else f"{total:.6g}"


_READERS = {
    **{suffix: _read_text for suffix in TEXT_SUFFIXES},
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".pt": _read_pt,
    ".pth": _read_pt,
    ".json": _read_json,
}

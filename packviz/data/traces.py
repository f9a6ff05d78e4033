"""Routing traces -> load time series: tokens routed to each expert, window by window.

``read_trace(source)`` reads what engines and hooks write while a model serves and returns one
:class:`LoadSeries` per phase found (prefill, decode, or ``None`` for mixed / untagged traffic):

- **SGLang's expert-distribution recorder**, modes ``per_pass`` and ``per_token`` (a ``.pt`` dict with
  ``records``, one per forward pass and rank, each holding ``forward_pass_id``, ``rank`` and
  ``global_physical_count`` [layers, physical experts]; ``per_token`` adds ``topk_ids_of_layer``
  [layers, tokens, top-k] of physical ids and ``forward_mode``), mapped to logical experts through
  ``last_physical_to_logical_map`` [layers, physical experts]. Records of several ranks (a directory
  of ``expert_distribution_recorder_*_{rank}.pt`` files) are summed per forward pass.
- **SGLang's stat mode and today's inputs**: ``logical_count`` [steps, layers, experts] in ``.pt`` or
  ``.json``, or any ``.npy`` / ``.pt`` array [windows, layers, experts], taken window by window.
- **SGLang's routed-experts output**: ``/generate`` responses (``.json``, or ``.jsonl`` one a line)
  whose ``meta_info["routed_experts"]`` holds the top-k expert ids of every position, base64 int32
  (or nested lists) ordered [positions, layers, top-k]; positions before ``prompt_tokens`` are prefill,
  the rest decode. A flat payload needs ``layers`` or ``top_k`` to be reshaped.
- **A token-level routing log**: ``.csv`` / ``.tsv`` / ``.jsonl`` rows, or a ``.npy`` integer array
  [rows, 2 + top-k], each row one token at one layer: layer, step (forward pass) or token, the top-k
  expert ids, and optionally a phase tag (prefill / decode). A directory of such files (one prompt a
  file, as the public DeepSeek-V2-Lite traces of ``ngavhane/moe-beyond``) is read file by file, each
  file one forward pass unless it has a step column.

Windows count ``forward passes`` or ``tokens`` (a token's n-th appearance at a layer is its n-th token
there), per phase; the last window may hold fewer. Token-level files are read in bounded memory:
text in chunks of lines, ``.npy`` memory-mapped in chunks of rows. Nothing is unpickled. Every
refusal is a :class:`TraceError` naming the file, the line or row, the column and the value.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PHASES = (None, "prefill", "decode")  # index = the phase code used while counting
UNITS = ("forward passes", "tokens", "windows")
SINGULAR = {"forward passes": "forward pass", "tokens": "token", "windows": "window"}
DEFAULT_TOKEN_WINDOW = 4096
CHUNK_ROWS = 65_536
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None}

LAYER_NAMES = ("layer", "layer_id", "layer id", "layer_idx", "layer_index", "moe_layer")
STEP_NAMES = ("step", "forward_pass_id", "forward_pass", "pass", "batch", "batch number", "iteration", "iter")
TOKEN_NAMES = ("token", "token_id", "token_index", "token_idx", "position", "pos", "token_pos")
EXPERT_NAMES = ("experts", "expert_ids", "activated expert ids", "topk_ids", "expert", "expert_id", "ids")
PHASE_NAMES = ("phase", "stage", "mode", "forward_mode")
PHASE_WORDS = {"prefill": 1, "extend": 1, "p": 1, "decode": 2, "d": 2, "mixed": 0, "": 0, "none": 0}
# SGLang's ForwardMode (python/sglang/srt/model_executor/forward_batch_info.py): EXTEND = 1, DECODE = 2
SGLANG_FORWARD_MODES = {1: 1, 2: 2}


class TraceError(ValueError):
    """A trace that cannot be read; the message says where (file, line or row, column) and what."""


@dataclass(frozen=True)
class LoadSeries:
    """loads [windows, layers, experts] float64: tokens routed to each expert in each window;
    window: the window's size in ``unit``; phase: "prefill", "decode" or None (mixed or not said);
    moe_layers [layers] bool: False for dense layers (all-zero in every window)."""

    loads: torch.Tensor
    window: int
    unit: str
    phase: str | None
    moe_layers: torch.Tensor
    source: str


def moe_layer_mask(loads: torch.Tensor) -> torch.Tensor:
    """[..., layers, experts] -> [layers] bool: True where any window routes a token to the layer."""
    loads = torch.as_tensor(loads)
    if loads.ndim < 2:
        raise ValueError(f"loads need at least [layers, experts], got shape {tuple(loads.shape)}")
    flat = loads.reshape(-1, loads.shape[-2], loads.shape[-1])
    return (flat != 0).any(dim=2).any(dim=0)


def read_trace(
    source: str | Path | bytes,
    name: str | None = None,
    *,
    window: int | None = None,
    unit: str | None = None,
    layers: int | None = None,
    top_k: int | None = None,
    experts: int | None = None,
) -> list[LoadSeries]:
    """Read a routing trace (path, directory, or ``bytes`` with their file ``name``) into one
    :class:`LoadSeries` per phase found, prefill first, then decode, then mixed / untagged.

    window, unit: the window (default one forward pass, 4096 tokens, or one window of an already
        windowed array); unit is "forward passes" or "tokens" ("windows" for [W, L, E] arrays).
    layers, top_k: reshape a flat SGLang routed-experts payload (either one is enough).
    experts: the number of experts per layer where the trace does not route to the last ones.
    """
    if unit is not None and unit not in UNITS:
        raise TraceError(f"unit {unit!r} is not one of {', '.join(map(repr, UNITS))}")
    if window is not None and (isinstance(window, bool) or int(window) != window or window < 1):
        raise TraceError(f"window {window!r} is not a whole number of at least 1")
    options = _Options(window, unit, layers, top_k, experts)
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return _read_directory(Path(source), options)
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        if not path.exists():
            raise TraceError(f"{name}: no such file")
        opened = _File(name, path=path)
    else:
        opened = _File(name or "upload", data=bytes(source))
    return _read_files([opened], options, opened.name)


# Plumbing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    window: int | None
    unit: str | None
    layers: int | None
    top_k: int | None
    experts: int | None


@dataclass(frozen=True)
class _File:
    name: str
    path: Path | None = None
    data: bytes | None = None

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower()

    def binary(self) -> io.BufferedIOBase:
        return self.path.open("rb") if self.path is not None else io.BytesIO(self.data)

    def text(self) -> io.TextIOBase:
        return io.TextIOWrapper(self.binary(), encoding="utf-8-sig", newline="")

    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None else len(self.data)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _read_directory(directory: Path, options: _Options) -> list[LoadSeries]:
    files = sorted((p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")), key=_natural_key)
    if not files:
        raise TraceError(f"{directory.name}: the directory holds no files")
    suffixes = {p.suffix.lower() for p in files}
    if len(suffixes) > 1:
        raise TraceError(f"{directory.name}: holds files of {len(suffixes)} kinds ({', '.join(sorted(suffixes))}); "
                         "a trace directory holds one kind")
    return _read_files([_File(p.name, path=p) for p in files], options, f"{directory.name}/ ({len(files)} files)")


def _read_files(files: list[_File], options: _Options, label: str) -> list[LoadSeries]:
    suffix = files[0].suffix
    for file in files:
        if file.size() == 0:
            raise TraceError(f"{file.name}: the file is empty")
    if suffix in (".pt", ".pth"):
        return _read_torch(files, options, label)
    if suffix == ".npy":
        return _read_npy(files, options, label)
    if suffix == ".jsonl" and _first_record_is_a_response(files[0]):
        return _routed_experts(_jsonl_responses(files), options, label, files[0].name)
    if suffix in TEXT_SUFFIXES or suffix == ".jsonl":
        return _read_logs(files, options, label)
    if suffix == ".json":
        return _read_json(files, options, label)
    raise TraceError(f"{files[0].name}: unknown trace type {suffix or '(none)'!r}; "
                     "use .csv, .tsv, .jsonl, .json, .npy or .pt")


class _Counter:
    """Routes counted into windows per phase: counts[phase] [windows, layers, experts] int64, grown
    as windows, layers and experts appear; token and pass ordinals kept per phase."""

    def __init__(self, window: int, unit: str):
        self.window, self.unit = window, unit
        self.counts: dict[int, np.ndarray] = {}
        self.token_seen: dict[int, np.ndarray] = {}  # phase -> [layers] tokens seen so far
        self.pass_ordinal: dict[int, dict[int, int]] = {}  # phase -> pass key -> ordinal

    def pass_windows(self, phase: int, keys: np.ndarray) -> np.ndarray:
        """[n] pass keys -> [n] window index; passes numbered in order of first appearance."""
        ordinals = self.pass_ordinal.setdefault(phase, {})
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        for position in np.argsort(first, kind="stable"):
            ordinals.setdefault(int(unique[position]), len(ordinals))
        mapped = np.fromiter((ordinals[int(k)] for k in unique), dtype=np.int64, count=len(unique))
        return mapped[inverse] // self.window

    def token_windows(self, phase: int, layer: np.ndarray) -> np.ndarray:
        """[n] layer of each token row, in order -> [n] window index of the token at its layer."""
        seen = self.token_seen.get(phase, np.zeros(0, dtype=np.int64))
        if layer.size == 0:
            return np.zeros(0, dtype=np.int64)
        if layer.max() >= seen.size:
            seen = np.pad(seen, (0, int(layer.max()) + 1 - seen.size))
        order = np.argsort(layer, kind="stable")
        sorted_layer = layer[order]
        starts = np.flatnonzero(np.r_[True, sorted_layer[1:] != sorted_layer[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, layer.size]))
        ordinal = np.empty(layer.size, dtype=np.int64)
        ordinal[order] = np.arange(layer.size) - group_start + seen[sorted_layer]
        seen = seen + np.bincount(layer, minlength=seen.size)
        self.token_seen[phase] = seen
        return ordinal // self.window

    def add(self, phase: int, window: np.ndarray, layer: np.ndarray, expert: np.ndarray,
            weight: np.ndarray | None = None) -> None:
        """Count routes: [n] window, layer and expert index (and weight, 1 when None)."""
        if window.size == 0:
            return
        low, high = int(window.min()), int(window.max())
        counts = self._grown(phase, high + 1, int(layer.max()) + 1, int(expert.max()) + 1)
        _, num_layers, num_experts = counts.shape
        flat = ((window - low) * num_layers + layer) * num_experts + expert
        block = np.bincount(flat, weights=weight, minlength=(high - low + 1) * num_layers * num_experts)
        counts[low : high + 1] += block.reshape(high - low + 1, num_layers, num_experts).astype(np.int64)

    def _grown(self, phase: int, windows: int, layers: int, experts: int) -> np.ndarray:
        counts = self.counts.get(phase)
        if counts is None:
            counts = np.zeros((max(windows, 16), layers, experts), dtype=np.int64)
        elif windows > counts.shape[0] or layers > counts.shape[1] or experts > counts.shape[2]:
            shape = (max(windows, 2 * counts.shape[0]) if windows > counts.shape[0] else counts.shape[0],
                     max(layers, counts.shape[1]), max(experts, counts.shape[2]))
            grown = np.zeros(shape, dtype=np.int64)
            grown[: counts.shape[0], : counts.shape[1], : counts.shape[2]] = counts
            counts = grown
        self.counts[phase] = counts
        return counts

    def used_windows(self, phase: int) -> int:
        if self.unit == "tokens":
            return math.ceil(int(self.token_seen[phase].max()) / self.window)
        return math.ceil(len(self.pass_ordinal[phase]) / self.window)

    def series(self, source: str, experts: int | None) -> list[LoadSeries]:
        if not self.counts:
            raise TraceError(f"{source}: holds no routed tokens")
        layers = max(c.shape[1] for c in self.counts.values())
        width = max(c.shape[2] for c in self.counts.values())
        if experts is not None:
            if experts < width:
                raise TraceError(f"{source}: routes to expert {width - 1}, but experts={experts} was given")
            width = experts
        out = []
        for phase in (1, 2, 0):
            if phase not in self.counts:
                continue
            windows = self.used_windows(phase)
            counts = self.counts[phase][:windows]
            loads = np.zeros((windows, layers, width), dtype=np.float64)
            loads[: counts.shape[0], : counts.shape[1], : counts.shape[2]] = counts
            out.append(_series(torch.from_numpy(loads), self.window, self.unit, PHASES[phase], source))
        return out


def _series(loads: torch.Tensor, window: int, unit: str, phase: str | None, source: str) -> LoadSeries:
    mask = moe_layer_mask(loads)
    dense = int((~mask).sum())
    if unit == "windows":
        what = f"{source}: {loads.shape[0]} windows" + (f" (each {window} of the file's)" if window > 1 else "")
    else:
        what = f"{source}: {loads.shape[0]} windows of {window} {unit if window != 1 else SINGULAR[unit]}"
    what += f", {loads.shape[1]} layers x {loads.shape[2]} experts"
    if phase:
        what += f", {phase}"
    if dense:
        what += f", {dense} dense (all-zero) layer{'s' if dense != 1 else ''}"
    return LoadSeries(loads, window, unit, phase, mask, what)


def _window_for(options: _Options, unit: str) -> int:
    if options.window is not None:
        return int(options.window)
    return DEFAULT_TOKEN_WINDOW if unit == "tokens" else 1


# Already windowed arrays [W, L, E] ---------------------------------------------------------------------


def _windowed(array: np.ndarray, options: _Options, source: str, where: str) -> list[LoadSeries]:
    if options.unit == "tokens":
        raise TraceError(f"{where}: an array of per-window loads cannot be cut into windows of tokens")
    unit = options.unit or "windows"
    values = _checked_loads(array, where)
    window = options.window or 1
    if window > 1:
        # the last window may be partial, as the last window of a log is
        grouped = math.ceil(values.shape[0] / window)
        padded = np.zeros((grouped * window, *values.shape[1:]))
        padded[: values.shape[0]] = values
        values = padded.reshape(grouped, window, *values.shape[1:]).sum(axis=1)
    loads = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    if options.experts is not None and options.experts > loads.shape[2]:
        loads = torch.nn.functional.pad(loads, (0, options.experts - loads.shape[2]))
    return [_series(loads, window, unit, None, source)]


def _checked_loads(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim != 3:
        raise TraceError(f"{where}: expected loads [windows, layers, experts], found shape {tuple(array.shape)}")
    if array.dtype.kind not in "iuf" or array.dtype.kind == "b":
        raise TraceError(f"{where}: holds {array.dtype} values, not loads")
    if 0 in array.shape:
        raise TraceError(f"{where}: the array is empty (shape {tuple(array.shape)})")
    values = array.astype(np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        w, layer, e = (int(i) for i in np.argwhere(bad)[0])
        value = float(values[w, layer, e])
        what = "is negative" if np.isfinite(value) else "is not a finite number"
        raise TraceError(f"{where}: window {w}, layer {layer}, expert {e}: {value!r} {what}")
    return values


# NumPy --------------------------------------------------------------------------------------------------


def _open_npy(file: _File) -> np.ndarray:
    try:
        if file.path is not None:
            return np.load(file.path, mmap_mode="r", allow_pickle=False)
        return np.load(io.BytesIO(file.data), allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower() or "object" in str(error).lower():
            raise TraceError(f"{file.name}: holds Python objects (pickled data), which packviz never loads") from None
        raise TraceError(f"{file.name}: not a valid .npy array ({error})") from None
    except (OSError, EOFError) as error:
        raise TraceError(f"{file.name}: not a valid .npy array ({error})") from None


def _read_npy(files: list[_File], options: _Options, label: str) -> list[LoadSeries]:
    first = _open_npy(files[0])
    if first.ndim == 3 and first.dtype.names is None:
        if len(files) > 1:
            arrays = [np.asarray(_open_npy(f)) for f in files]
            return _windowed(np.concatenate(arrays), options, label, label)
        return _windowed(np.asarray(first), options, label, files[0].name)
    counter = None
    for index, file in enumerate(files):
        array = first if index == 0 else _open_npy(file)
        counter = _count_rows(_npy_rows(array, file.name, index), options, counter, file.name)
    return counter.series(label, options.experts)


@dataclass
class _Rows:
    """A chunk of token rows: layer [n], expert ids [n, k] (-1 for none), step [n] or None, phase
    code [n]; file_index tells the files of a directory apart; first_row numbers the chunk's first
    row in its file (for messages)."""

    layer: np.ndarray
    ids: np.ndarray
    step: np.ndarray | None
    phase: np.ndarray
    first_row: int
    where: str  # "row" or "line"
    file_index: int = 0

    @property
    def pass_key(self) -> np.ndarray | None:
        return None if self.step is None else (self.file_index << 40) + self.step


def _npy_rows(array: np.ndarray, name: str, file_index: int) -> Iterator[_Rows]:
    if array.dtype.names is not None:
        yield from _structured_rows(array, name, file_index)
        return
    if array.ndim != 2 or array.dtype.kind not in "iu" or array.shape[1] < 3:
        raise TraceError(f"{name}: a routing log array is integer [rows, 2 + top_k] (layer, step, expert ids) "
                         f"or loads [windows, layers, experts]; found {array.dtype} of shape {tuple(array.shape)}")
    for start in range(0, array.shape[0], CHUNK_ROWS):
        chunk = np.asarray(array[start : start + CHUNK_ROWS], dtype=np.int64)
        yield _Rows(chunk[:, 0], chunk[:, 2:], chunk[:, 1], np.zeros(len(chunk), dtype=np.int64), start, "row",
                    file_index)


def _structured_rows(array: np.ndarray, name: str, file_index: int) -> Iterator[_Rows]:
    fields = {f.lower(): f for f in array.dtype.names}
    layer = _pick(fields, LAYER_NAMES)
    experts = _pick(fields, EXPERT_NAMES)
    step = _pick(fields, STEP_NAMES)
    phase = _pick(fields, PHASE_NAMES)
    if layer is None or experts is None:
        raise TraceError(f"{name}: a structured routing log needs a layer field and an expert ids field; "
                         f"its fields: {', '.join(array.dtype.names)}")
    for start in range(0, array.shape[0], CHUNK_ROWS):
        chunk = array[start : start + CHUNK_ROWS]
        ids = np.asarray(chunk[experts], dtype=np.int64).reshape(len(chunk), -1)
        codes = np.zeros(len(chunk), dtype=np.int64)
        if phase is not None:
            raw = np.asarray(chunk[phase])
            codes = _phase_codes(raw, name, start, phase)
        steps = None if step is None else np.asarray(chunk[step], dtype=np.int64)
        yield _Rows(np.asarray(chunk[layer], dtype=np.int64), ids, steps, codes, start, "row", file_index)


def _phase_codes(raw: np.ndarray, name: str, start: int, column: str) -> np.ndarray:
    if raw.dtype.kind in "iu":
        bad = ~np.isin(raw, (0, 1, 2))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise TraceError(f"{name}: row {start + row + 1}, column {column!r}: {int(raw[row])} is not a phase "
                             "(0 mixed, 1 prefill, 2 decode)")
        return raw.astype(np.int64)
    words = [str(v.decode() if isinstance(v, bytes) else v).strip().lower() for v in raw]
    codes = np.empty(len(words), dtype=np.int64)
    for row, word in enumerate(words):
        if word not in PHASE_WORDS:
            raise TraceError(f"{name}: row {start + row + 1}, column {column!r}: {word!r} is not a phase "
                             "(prefill or decode)")
        codes[row] = PHASE_WORDS[word]
    return codes


def _pick(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((columns[n] for n in names if n in columns), None)


# Counting token rows --------------------------------------------------------------------------------------


def _count_rows(chunks: Iterator[_Rows], options: _Options, counter: _Counter | None, name: str) -> _Counter:
    for rows in chunks:
        if counter is None:
            unit = options.unit or ("forward passes" if rows.pass_key is not None else "tokens")
            if unit == "windows":
                raise TraceError(f"{name}: a token-level log is windowed by 'forward passes' or 'tokens'")
            counter = _Counter(_window_for(options, unit), unit)
        _check_rows(rows, name, options)
        if counter.unit == "forward passes" and rows.pass_key is None:
            raise TraceError(f"{name}: has no step column, so it can be windowed by tokens only "
                             f"(its columns name no {' / '.join(STEP_NAMES[:3])})")
        for phase in np.unique(rows.phase):
            keep = rows.phase == phase
            layer, ids = rows.layer[keep], rows.ids[keep]
            if counter.unit == "tokens":
                window = counter.token_windows(int(phase), layer)
            else:
                window = counter.pass_windows(int(phase), rows.pass_key[keep])
            k = ids.shape[1]
            routed = ids.reshape(-1) >= 0
            counter.add(int(phase), np.repeat(window, k)[routed], np.repeat(layer, k)[routed], ids.reshape(-1)[routed])
    if counter is None:
        raise TraceError(f"{name}: holds no rows of routing")
    return counter


def _check_rows(rows: _Rows, name: str, options: _Options) -> None:
    def fail(index: int, column: str, value: object, problem: str) -> None:
        raise TraceError(f"{name}: {rows.where} {rows.first_row + index + 1}, column {column!r}: {value!r} {problem}")

    if rows.layer.size and rows.layer.min() < 0:
        index = int(np.argmax(rows.layer < 0))
        fail(index, "layer", int(rows.layer[index]), "is a negative layer")
    if options.layers is not None and rows.layer.size and rows.layer.max() >= options.layers:
        index = int(np.argmax(rows.layer >= options.layers))
        fail(index, "layer", int(rows.layer[index]), f"is past the {options.layers} layers given")
    if rows.ids.size and rows.ids.min() < -1:
        index = int(np.argwhere(rows.ids < -1)[0][0])
        fail(index, "experts", int(rows.ids[index][rows.ids[index] < -1][0]), "is a negative expert id")
    if options.experts is not None and rows.ids.size and rows.ids.max() >= options.experts:
        index = int(np.argwhere(rows.ids >= options.experts)[0][0])
        value = int(rows.ids[index][rows.ids[index] >= options.experts][0])
        fail(index, "experts", value, f"is past the {options.experts} experts given")
    if rows.step is not None and rows.step.size and rows.step.min() < 0:
        index = int(np.argmax(rows.step < 0))
        fail(index, "step", int(rows.step[index]), "is a negative step")


# Text logs: CSV / TSV / JSONL ---------------------------------------------------------------------------


_ID = re.compile(r"-?\d+")
_SEPARATORS = str.maketrans(",;|", "   ")


def _parse_ids(cell: object, name: str, line: int, column: str) -> list[int]:
    if isinstance(cell, list):
        values = cell
    elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
        values = [cell]
    elif isinstance(cell, str):
        parts = cell.strip().strip("[]()").translate(_SEPARATORS).split()
        try:
            if parts:
                return [int(p) for p in parts]
        except ValueError:
            pass
        raise TraceError(f"{name}: line {line}, column {column!r}: {_quoted(cell)} is not a list of expert ids")
    else:
        raise TraceError(f"{name}: line {line}, column {column!r}: {_quoted(cell)} is not a list of expert ids")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise TraceError(f"{name}: line {line}, column {column!r}: {_quoted(value)} is not an expert id")
        out.append(int(value))
    return out


def _quoted(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _integer(cell: object, name: str, line: int, column: str) -> int:
    if isinstance(cell, bool):
        raise TraceError(f"{name}: line {line}, column {column!r}: {cell!r} is not a whole number")
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float) and cell.is_integer():
        return int(cell)
    if isinstance(cell, str) and _ID.fullmatch(cell.strip()):
        return int(cell.strip())
    raise TraceError(f"{name}: line {line}, column {column!r}: {_quoted(cell)} is not a whole number")


def _phase_word(cell: object, name: str, line: int, column: str) -> int:
    if isinstance(cell, int) and not isinstance(cell, bool) and cell in SGLANG_FORWARD_MODES:
        return SGLANG_FORWARD_MODES[cell]
    word = str(cell).strip().lower() if cell is not None else ""
    if word not in PHASE_WORDS:
        raise TraceError(f"{name}: line {line}, column {column!r}: {_quoted(cell)} is not a phase (prefill or decode)")
    return PHASE_WORDS[word]


class _RowBuffer:
    """Parsed rows gathered until a chunk is full; expert columns may be one list cell or several."""

    def __init__(self, name: str, file_index: int, has_step: bool):
        self.name, self.file_index, self.has_step = name, file_index, has_step
        self.clear(0)

    def clear(self, first_line: int) -> None:
        self.layer: list[int] = []
        self.step: list[int] = []
        self.ids: list[list[int]] = []
        self.phase: list[int] = []
        self.first_line = first_line
        self.width: int | None = None

    def append(self, line: int, layer: int, step: int | None, ids: list[int], phase: int, column: str) -> None:
        if self.width is None:
            self.width = len(ids)
        elif len(ids) != self.width:
            raise TraceError(f"{self.name}: line {line}, column {column!r}: {len(ids)} expert ids where the rows "
                             f"above hold {self.width}")
        self.layer.append(layer)
        self.ids.append(ids)
        self.phase.append(phase)
        if step is not None:
            self.step.append(step)

    def rows(self) -> _Rows:
        steps = None
        if self.has_step:
            steps = np.asarray(self.step, dtype=np.int64)
        elif self.file_index >= 0:
            steps = np.zeros(len(self.layer), dtype=np.int64)
        ids = np.asarray(self.ids, dtype=np.int64).reshape(len(self.ids), -1)
        layer = np.asarray(self.layer, dtype=np.int64)
        return _Rows(layer, ids, steps, np.asarray(self.phase, dtype=np.int64), self.first_line - 1, "line",
                     max(self.file_index, 0))


def _read_logs(files: list[_File], options: _Options, label: str) -> list[LoadSeries]:
    counter = None
    for index, file in enumerate(files):
        # one file of several without a step column is one forward pass (one prompt a file)
        file_index = index if len(files) > 1 else -1
        chunks = _jsonl_rows(file, file_index) if file.suffix == ".jsonl" else _csv_rows(file, file_index)
        counter = _count_rows(chunks, options, counter, file.name)
    return counter.series(label, options.experts)


def _csv_rows(file: _File, file_index: int) -> Iterator[_Rows]:
    name = file.name
    with file.text() as handle:
        try:
            header_line = handle.readline()
        except UnicodeDecodeError:
            raise TraceError(f"{name}: not UTF-8 text") from None
        delimiter = TEXT_SUFFIXES.get(file.suffix) or _sniff(header_line)
        header = [cell.strip() for cell in next(csv.reader([header_line], delimiter=delimiter))]
        columns = {cell.lower(): position for position, cell in enumerate(header)}
        layer = _column(columns, LAYER_NAMES)
        step = _column(columns, STEP_NAMES)
        phase = _column(columns, PHASE_NAMES)
        expert_columns = _expert_columns(header)
        if layer is None or not expert_columns:
            raise TraceError(f"{name}: line 1 should name the columns (layer, step or token, expert ids, optional "
                             f"phase); found {', '.join(map(repr, header[:8]))}")
        expert_label = header[expert_columns[0]]
        buffer = _RowBuffer(name, file_index, step is not None)
        line = 1
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            for cells in reader:
                line = reader.line_num + 1
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if len(cells) != len(header):
                    raise TraceError(f"{name}: line {line} has {len(cells)} cells, line 1 names {len(header)} columns")
                if not buffer.layer:
                    buffer.first_line = line
                if len(expert_columns) == 1:
                    ids = _parse_ids(cells[expert_columns[0]], name, line, expert_label)
                else:
                    ids = [_integer(cells[c], name, line, header[c]) for c in expert_columns]
                buffer.append(
                    line,
                    _integer(cells[layer], name, line, header[layer]),
                    None if step is None else _integer(cells[step], name, line, header[step]),
                    ids,
                    0 if phase is None else _phase_word(cells[phase], name, line, header[phase]),
                    expert_label,
                )
                if len(buffer.layer) >= CHUNK_ROWS:
                    yield buffer.rows()
                    buffer.clear(line + 1)
        except UnicodeDecodeError:
            raise TraceError(f"{name}: line {line + 1} is not UTF-8 text") from None
        except csv.Error as error:
            raise TraceError(f"{name}: line {reader.line_num}: {error}") from None
        if buffer.layer:
            yield buffer.rows()


def _sniff(line: str) -> str:
    counts = {d: line.count(d) for d in (",", "\t", ";")}
    return max(counts, key=counts.get) if any(counts.values()) else ","


def _column(columns: dict[str, int], names: tuple[str, ...]) -> int | None:
    return next((columns[n] for n in names if n in columns), None)


_EXPERT_COLUMN = re.compile(r"(?:expert|e|topk|top_k|id)_?(\d+)")


def _expert_columns(header: list[str]) -> list[int]:
    lowered = [cell.lower() for cell in header]
    single = next((position for n in EXPERT_NAMES for position, cell in enumerate(lowered) if cell == n), None)
    if single is not None:
        return [single]
    numbered = [(int(m.group(1)), position) for position, cell in enumerate(lowered)
                if (m := _EXPERT_COLUMN.fullmatch(cell))]
    return [position for _, position in sorted(numbered)]


def _json_lines(handle: Iterable[str], name: str) -> Iterator[tuple[int, object]]:
    """(line number, record) of each non-blank line of a JSON-lines file, read one at a time."""
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            yield line, json.loads(text)
        except json.JSONDecodeError as error:
            raise TraceError(f"{name}: line {line} is not valid JSON ({error.msg}, column {error.colno})") from None


def _jsonl_rows(file: _File, file_index: int) -> Iterator[_Rows]:
    name = file.name
    buffer = None
    keys: dict[str, str | None] = {}
    with file.text() as handle:
        line = 0
        try:
            for line, record in _json_lines(handle, name):
                if not isinstance(record, dict):
                    raise TraceError(f"{name}: line {line} is {_quoted(record)}, not an object with layer and experts")
                if buffer is None:
                    lowered = {k.lower(): k for k in record}
                    keys = {"layer": _pick(lowered, LAYER_NAMES), "step": _pick(lowered, STEP_NAMES),
                            "experts": _pick(lowered, EXPERT_NAMES), "phase": _pick(lowered, PHASE_NAMES)}
                    if keys["layer"] is None or keys["experts"] is None:
                        raise TraceError(f"{name}: line {line} names no layer and expert ids; its keys: "
                                         f"{', '.join(list(record)[:8])}")
                    buffer = _RowBuffer(name, file_index, keys["step"] is not None)
                    buffer.first_line = line
                if not buffer.layer:
                    buffer.first_line = line
                for role in ("layer", "experts") + (("step",) if keys["step"] else ()):
                    if keys[role] not in record:
                        raise TraceError(f"{name}: line {line} has no {keys[role]!r}")
                buffer.append(
                    line,
                    _integer(record[keys["layer"]], name, line, keys["layer"]),
                    None if keys["step"] is None else _integer(record[keys["step"]], name, line, keys["step"]),
                    _parse_ids(record[keys["experts"]], name, line, keys["experts"]),
                    0 if keys["phase"] is None else _phase_word(record.get(keys["phase"]), name, line, keys["phase"]),
                    keys["experts"],
                )
                if len(buffer.layer) >= CHUNK_ROWS:
                    yield buffer.rows()
                    buffer.clear(line + 1)
        except UnicodeDecodeError:
            raise TraceError(f"{name}: line {line + 1} is not UTF-8 text") from None
    if buffer is not None and buffer.layer:
        yield buffer.rows()


# JSON: stat-mode logical_count, or SGLang /generate responses with routed experts --------------------------


def _read_json(files: list[_File], options: _Options, label: str) -> list[LoadSeries]:
    if len(files) > 1:
        raise TraceError(f"{label}: read .json traces one file at a time")
    file = files[0]
    try:
        with file.text() as handle:
            content = json.load(handle)
    except UnicodeDecodeError:
        raise TraceError(f"{file.name}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise TraceError(
            f"{file.name}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    if isinstance(content, dict) and "logical_count" in content:
        return _windowed(_numeric_array(content["logical_count"], file.name), options, label, file.name)
    responses = content if isinstance(content, list) else [content]
    if not responses or not all(isinstance(r, dict) and isinstance(r.get("meta_info"), dict) for r in responses):
        keys = ", ".join(list(content)[:8]) if isinstance(content, dict) else type(content).__name__
        raise TraceError(f"{file.name}: expected 'logical_count' or SGLang responses with meta_info.routed_experts; "
                         f"found {keys}")
    return _routed_experts(responses, options, label, file.name)


def _numeric_array(content: object, name: str) -> np.ndarray:
    try:
        return np.asarray(content, dtype=np.float64)
    except (TypeError, ValueError):
        raise TraceError(f"{name}: 'logical_count' is not a [steps, layers, experts] array of numbers") from None


def _routed_array(meta: dict, options: _Options, name: str, number: int) -> np.ndarray:
    """One response's routed experts -> [positions, layers, top_k] int64."""
    where = f"{name}: response {number}"
    payload = meta.get("routed_experts")
    if payload is None:
        raise TraceError(f"{where}: meta_info has no 'routed_experts' (ask the server with return_routed_experts)")
    if isinstance(payload, list):
        array = np.asarray(payload)
        if array.ndim != 3 or array.dtype.kind not in "iu":
            raise TraceError(f"{where}: routed_experts should be [positions, layers, top_k] whole numbers, found "
                             f"shape {array.shape}")
        return array.astype(np.int64)
    if not isinstance(payload, str):
        raise TraceError(f"{where}: routed_experts is {type(payload).__name__}, not base64 text or nested lists")
    dtype_name = meta.get("routed_experts_dtype", "int32")
    try:
        dtype = np.dtype(dtype_name)
        raw = base64.b64decode(payload.encode("ascii"), validate=True)
        flat = np.frombuffer(raw, dtype=dtype).astype(np.int64)
    except (TypeError, ValueError) as error:
        raise TraceError(f"{where}: routed_experts is not base64 of {dtype_name} ({error})") from None
    positions = None
    if isinstance(meta.get("prompt_tokens"), int) and isinstance(meta.get("completion_tokens"), int):
        # the last token is sampled but never run through the model, so most versions hold one fewer
        total = meta["prompt_tokens"] + meta["completion_tokens"]
        known = options.layers or options.top_k or 1
        positions = next((n for n in (total - 1, total) if n > 0 and flat.size % n == 0
                          and (flat.size // n) % known == 0), None)
    if options.layers and options.top_k:
        per_position = options.layers * options.top_k
    elif positions and (options.layers or options.top_k):
        per_position = flat.size // positions
    elif options.layers or options.top_k:
        raise TraceError(f"{where}: give both layers and top_k ({flat.size} ids do not split by meta_info's "
                         "prompt_tokens + completion_tokens)")
    else:
        raise TraceError(f"{where}: routed_experts is {flat.size} flat ids; give layers= or top_k= to reshape them")
    known = options.layers or options.top_k
    if per_position == 0 or flat.size % per_position or per_position % known:
        raise TraceError(f"{where}: {flat.size} ids do not split into positions of {per_position} "
                         f"({options.layers or '?'} layers x {options.top_k or '?'} experts)")
    layers = options.layers or per_position // options.top_k
    return flat.reshape(-1, layers, per_position // layers)


def _first_record_is_a_response(file: _File) -> bool:
    with file.text() as handle:
        for text in handle:
            if text.strip():
                try:
                    record = json.loads(text)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    return False  # the row reader names the line
                return isinstance(record, dict) and "meta_info" in record
    return False


def _jsonl_responses(files: list[_File]) -> Iterator[dict]:
    """SGLang responses one a line, read one at a time."""
    for file in files:
        with file.text() as handle:
            for line, record in _json_lines(handle, file.name):
                if not isinstance(record, dict) or not isinstance(record.get("meta_info"), dict):
                    raise TraceError(f"{file.name}: line {line} is no SGLang response (it has no meta_info)")
                yield record


def _routed_experts(responses: Iterable[dict], options: _Options, label: str, name: str) -> list[LoadSeries]:
    unit = options.unit or "tokens"
    if unit == "windows":
        raise TraceError(f"{name}: routed experts are windowed by 'forward passes' or 'tokens'")
    counter = _Counter(_window_for(options, unit), unit)
    passes = 0
    for number, response in enumerate(responses, start=1):
        meta = response["meta_info"]
        ids = _routed_array(meta, options, name, number)
        positions, layers, k = ids.shape
        # SGLang's torch buffer starts at zero, so a layer it never captured (a dense one) reads as
        # expert 0 in every slot; real top-k ids are distinct, so such a layer routes nothing
        dense = (ids == ids[:, :, :1]).all(axis=2).all(axis=0) if k > 1 else np.zeros(layers, dtype=bool)
        ids = np.where(dense[None, :, None], -1, ids)
        prompt = int(meta.get("prompt_tokens", positions))
        for phase, part in ((1, ids[:prompt]), (2, ids[prompt:])):
            if not len(part):
                continue
            layer = np.tile(np.arange(layers), len(part))
            rows_ids = part.reshape(-1, k)
            if unit == "tokens":
                window = counter.token_windows(phase, layer)
            else:
                # a prompt is one forward pass, each decoded token one more
                keys = np.repeat(np.arange(len(part)) if phase == 2 else np.zeros(len(part), dtype=np.int64), layers)
                window = counter.pass_windows(phase, keys + (passes << 20))
            routed = rows_ids.reshape(-1) >= 0
            counter.add(phase, np.repeat(window, k)[routed], np.repeat(layer, k)[routed], rows_ids.reshape(-1)[routed])
        passes += 1
    return counter.series(label, options.experts)


# torch: SGLang recorder dumps ---------------------------------------------------------------------------------


def _load_torch(file: _File) -> object:
    try:
        with file.binary() as handle:
            return torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a refused or broken file
        if "weights_only" in str(error).lower() or "unpickl" in str(error).lower():
            raise TraceError(f"{file.name}: refused: it holds Python objects, not plain tensors, and packviz never "
                             "unpickles uploaded code") from None
        raise TraceError(f"{file.name}: not a readable torch file ({type(error).__name__})") from None


def _read_torch(files: list[_File], options: _Options, label: str) -> list[LoadSeries]:
    contents = [(_load_torch(f), f.name) for f in files]
    if all(isinstance(c, dict) and "records" in c for c, _ in contents):
        return _recorder_records(contents, options, label)
    if len(contents) == 1:
        content, name = contents[0]
        if isinstance(content, dict) and "logical_count" in content:
            content = content["logical_count"]
        if isinstance(content, torch.Tensor):
            return _windowed(content.detach().cpu().numpy(), options, label, name)
        keys = ", ".join(map(str, list(content)[:8])) if isinstance(content, dict) else type(content).__name__
        raise TraceError(f"{name}: expected an SGLang recorder dump ('records' or 'logical_count') or a "
                         f"[windows, layers, experts] tensor; found {keys}")
    raise TraceError(f"{label}: a directory of .pt files should hold SGLang per_pass / per_token dumps "
                     "(with 'records')")


def _recorder_records(contents: list[tuple[object, str]], options: _Options, label: str) -> list[LoadSeries]:
    passes: dict[int, dict] = {}  # forward_pass_id -> summed counts, phase, per-token ids
    physical_to_logical = None
    for content, name in contents:
        mapping = content.get("last_physical_to_logical_map")
        if isinstance(mapping, torch.Tensor):
            physical_to_logical = mapping.to(torch.int64)
        records = content["records"]
        if not isinstance(records, list):
            raise TraceError(f"{name}: 'records' is {type(records).__name__}, not a list of forward passes")
        for number, record in enumerate(records, start=1):
            where = f"{name}: record {number}"
            if not isinstance(record, dict) or "global_physical_count" not in record:
                raise TraceError(f"{where} has no 'global_physical_count'")
            count = record["global_physical_count"]
            if not isinstance(count, torch.Tensor) or count.ndim != 2:
                raise TraceError(f"{where}: global_physical_count should be a [layers, physical experts] tensor")
            if (count < 0).any():
                layer, slot = (int(i) for i in torch.nonzero(count < 0)[0])
                raise TraceError(f"{where}: global_physical_count layer {layer}, slot {slot}: "
                                 f"{int(count[layer, slot])} is negative")
            pass_id = int(record.get("forward_pass_id", len(passes)))
            entry = passes.setdefault(pass_id, {"count": torch.zeros_like(count, dtype=torch.int64), "phase": 0,
                                                "ids": []})
            if entry["count"].shape != count.shape:
                raise TraceError(f"{where}: global_physical_count has shape {tuple(count.shape)}, earlier records "
                                 f"{tuple(entry['count'].shape)}")
            entry["count"] += count.to(torch.int64)
            mode = record.get("forward_mode")
            if isinstance(mode, int):
                entry["phase"] = SGLANG_FORWARD_MODES.get(mode, 0)
            if "topk_ids_of_layer" in record:
                entry["ids"].append(record["topk_ids_of_layer"])
    if not passes:
        raise TraceError(f"{label}: the dump holds no records (was the recorder started before the traffic?)")
    layers, physical = next(iter(passes.values()))["count"].shape
    if physical_to_logical is None:
        physical_to_logical = torch.arange(physical).expand(layers, physical)
    if tuple(physical_to_logical.shape) != (layers, physical):
        raise TraceError(f"{label}: last_physical_to_logical_map has shape {tuple(physical_to_logical.shape)}, "
                         f"the counts [{layers}, {physical}]")
    logical = int(physical_to_logical.max()) + 1
    unit = options.unit or "forward passes"
    if unit == "windows":
        raise TraceError(f"{label}: recorder dumps are windowed by 'forward passes' or 'tokens'")
    counter = _Counter(_window_for(options, unit), unit)
    mapping = physical_to_logical.numpy()
    for pass_id in sorted(passes):
        entry = passes[pass_id]
        phase = entry["phase"]
        if unit == "tokens":
            if not entry["ids"]:
                raise TraceError(f"{label}: forward pass {pass_id} has no topk_ids_of_layer (a per_pass dump counts "
                                 "whole passes; window it by forward passes)")
            for ids in entry["ids"]:
                ids = ids.to(torch.int64).numpy()  # [layers, tokens, k] physical ids, -1 unused
                _, tokens, k = ids.shape
                layer = np.tile(np.arange(layers), tokens)
                rows_ids = ids.transpose(1, 0, 2).reshape(-1, k)
                rows_layer = np.repeat(layer, k)
                flat = rows_ids.reshape(-1)
                routed = flat >= 0
                logical_ids = mapping[rows_layer[routed], flat[routed]]
                window = np.repeat(counter.token_windows(phase, layer), k)[routed]
                counter.add(phase, window, rows_layer[routed], logical_ids)
            continue
        window = counter.pass_windows(phase, np.array([pass_id]))[0]
        count = entry["count"].numpy()
        nonzero = np.nonzero(count)
        counter.add(phase, np.full(len(nonzero[0]), window), nonzero[0], mapping[nonzero],
                    count[nonzero].astype(np.float64))
    return counter.series(label, options.experts or logical)

"""Routing traces -> load time series: every format, both window units, phases, dense layers,
bounded memory on large logs, and one clear sentence for each bad input."""

from __future__ import annotations

import base64
import io
import json
import pickle
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz.data import traces
from packviz.data.traces import TraceError, moe_layer_mask, read_trace

# token rows: (layer, step, phase, expert ids)
ROWS = [
    (0, 0, "prefill", [1, 2]), (1, 0, "prefill", [0, 3]),
    (0, 0, "prefill", [1, 3]), (1, 0, "prefill", [0, 2]),
    (0, 1, "decode", [2, 3]), (1, 1, "decode", [3, 1]),
    (0, 2, "decode", [2, 0]), (1, 2, "decode", [3, 3]),
    (0, 3, "prefill", [0, 1]), (1, 3, "prefill", [1, 2]),
]


def expected(rows, phase, window, unit, layers=2, experts=4):
    """Count rows by hand: window index by pass ordinal or by token ordinal at the layer."""
    picked = [r for r in rows if phase is None or r[2] == phase]
    passes = list(dict.fromkeys(r[1] for r in picked))
    seen = {}
    windows = {}
    for layer, step, _, ids in picked:
        if unit == "tokens":
            index = seen.get(layer, 0) // window
            seen[layer] = seen.get(layer, 0) + 1
        else:
            index = passes.index(step) // window
        for expert in ids:
            windows.setdefault(index, np.zeros((layers, experts)))[layer, expert] += 1
    return np.stack([windows.get(w, np.zeros((layers, experts))) for w in range(max(windows) + 1)])


def csv_text(rows, phase=True):
    header = "layer,step,phase,experts" if phase else "layer,step,experts"
    lines = [header]
    for layer, step, tag, ids in rows:
        cells = [str(layer), str(step)] + ([tag] if phase else []) + ['"' + json.dumps(ids) + '"']
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def by_phase(series):
    return {s.phase: s for s in series}


def test_csv_log_keeps_prefill_and_decode_apart_and_windows_by_passes():
    series = by_phase(read_trace(csv_text(ROWS), "log.csv", window=1))
    assert list(series) == ["prefill", "decode"]
    for phase in ("prefill", "decode"):
        assert series[phase].unit == "forward passes" and series[phase].window == 1
        assert np.array_equal(series[phase].loads.numpy(), expected(ROWS, phase, 1, "passes"))
    assert series["prefill"].loads.shape == (2, 2, 4)  # passes 0 and 3


def test_csv_log_windows_by_tokens_count_each_layers_tokens():
    series = by_phase(read_trace(csv_text(ROWS), "log.csv", window=2, unit="tokens"))
    assert series["prefill"].unit == "tokens"
    for phase in ("prefill", "decode"):
        assert np.array_equal(series[phase].loads.numpy(), expected(ROWS, phase, 2, "tokens"))


def test_untagged_log_is_one_mixed_series_and_a_log_without_steps_windows_by_tokens():
    (series,) = read_trace(csv_text(ROWS, phase=False), "log.csv", window=3)
    assert series.phase is None
    assert np.array_equal(series.loads.numpy(), expected(ROWS, None, 3, "passes"))
    no_steps = "layer,expert_ids\n" + "".join(f'{r[0]},"{r[3]}"\n' for r in ROWS)
    (series,) = read_trace(no_steps.encode(), "log.csv", window=2)
    assert series.unit == "tokens"
    assert np.array_equal(series.loads.numpy(), expected(ROWS, None, 2, "tokens"))
    with pytest.raises(TraceError, match="has no step column, so it can be windowed by tokens only"):
        read_trace(no_steps.encode(), "log.csv", unit="forward passes")


def test_expert_ids_in_numbered_columns_tabs_and_semicolon_lists_read_alike():
    tsv = "layer\tstep\texpert_0\texpert_1\n" + "".join(f"{r[0]}\t{r[1]}\t{r[3][0]}\t{r[3][1]}\n" for r in ROWS)
    spaced = "layer,step,experts\n" + "".join(f"{r[0]},{r[1]},{r[3][0]};{r[3][1]}\n" for r in ROWS)
    want = expected(ROWS, None, 1, "passes")
    for data, name in ((tsv, "log.tsv"), (spaced, "log.csv")):
        (series,) = read_trace(data.encode(), name)
        assert np.array_equal(series.loads.numpy(), want), name


def test_jsonl_log_reads_like_the_csv():
    text = "".join(json.dumps({"layer": r[0], "step": r[1], "phase": r[2], "experts": r[3]}) + "\n" for r in ROWS)
    series = by_phase(read_trace(text.encode(), "log.jsonl", window=2))
    for phase in ("prefill", "decode"):
        assert np.array_equal(series[phase].loads.numpy(), expected(ROWS, phase, 2, "passes"))


def test_npy_log_plain_and_structured():
    plain = np.array([[r[0], r[1], *r[3]] for r in ROWS], dtype=np.int32)
    buffer = io.BytesIO()
    np.save(buffer, plain)
    (series,) = read_trace(buffer.getvalue(), "log.npy", window=2)
    assert np.array_equal(series.loads.numpy(), expected(ROWS, None, 2, "passes"))
    dtype = np.dtype([("layer", np.int16), ("step", np.int32), ("phase", "U8"), ("experts", np.int32, (2,))])
    structured = np.array([(r[0], r[1], r[2], r[3]) for r in ROWS], dtype=dtype)
    buffer = io.BytesIO()
    np.save(buffer, structured)
    series = by_phase(read_trace(buffer.getvalue(), "log.npy", unit="tokens", window=1))
    assert np.array_equal(series["decode"].loads.numpy(), expected(ROWS, "decode", 1, "tokens"))


def test_a_directory_of_one_prompt_files_is_one_forward_pass_a_file_and_a_missing_layer_is_dense(tmp_path):
    # the public DeepSeek-V2-Lite traces: layer ids from 1 (layer 0 is dense), a token text column
    # that holds commas and quotes, ids as a bracketed list
    prompts = [[(1, "Hello", [3, 1]), (1, ', "world"', [0, 1]), (2, "Hello", [2, 3]), (2, ', "world"', [2, 1])],
               [(1, "x", [3, 2]), (2, "x", [0, 1])],
               [(1, "y", [1, 2]), (2, "y", [1, 0])]]
    for number, prompt in enumerate(prompts, start=1):
        out = io.StringIO()
        import csv

        writer = csv.writer(out)
        writer.writerow(["Layer ID", "Batch Number", "Token", "Activated Expert IDs"])
        for layer, token, ids in prompt:
            writer.writerow([layer, 0, token, str(ids)])
        # numbered 1, 2, 10 so that a plain sort would misorder them
        (tmp_path / f"prompt_{[1, 2, 10][number - 1]}_data.csv").write_text(out.getvalue())
    (series,) = read_trace(tmp_path, window=2)
    assert series.loads.shape == (2, 3, 4)
    assert series.moe_layers.tolist() == [False, True, True]
    assert series.loads[0, 1].tolist() == [1, 2, 1, 2]  # prompts 1 and 2, layer 1
    assert series.loads[1, 2].tolist() == [1, 1, 0, 0]  # prompt 10, layer 2
    assert "1 dense (all-zero) layer" in series.source


def sglang_dump(per_token: bool) -> bytes:
    # 2 layers (the first dense), 4 physical slots holding logical experts [0, 1, 2, 1]
    mapping = torch.tensor([[0, 1, 2, 1], [0, 1, 2, 1]])
    records = []
    for pass_id, mode in ((10, 1), (11, 2), (12, 2)):
        for rank in (0, 1):
            ids = torch.full((2, 3, 2), -1, dtype=torch.int32)
            ids[1] = torch.tensor([[0, 3], [1, 2], [3, 2]], dtype=torch.int32) if rank == 0 else \
                torch.tensor([[0, 1], [-1, -1], [-1, -1]], dtype=torch.int32)
            count = torch.zeros(2, 4, dtype=torch.int32)
            for slot in ids[1].flatten().tolist():
                if slot >= 0:
                    count[1, slot] += 1
            record = {"forward_pass_id": pass_id, "rank": rank, "gatherer_key": "primary",
                      "global_physical_count": count}
            if per_token:
                record.update(topk_ids_of_layer=ids, forward_mode=mode, input_ids=[1, 2, 3], positions=[0, 1, 2],
                              extend_seq_lens=None, misc_objects=[])
            records.append(record)
    buffer = io.BytesIO()
    torch.save({"records": records, "last_physical_to_logical_map": mapping}, buffer)
    return buffer.getvalue()


def test_sglang_per_pass_dump_sums_ranks_and_maps_physical_slots_to_logical_experts():
    (series,) = read_trace(sglang_dump(per_token=False), "expert_distribution_recorder_1.0_0.pt")
    assert series.unit == "forward passes" and series.phase is None
    # per pass: rank 0 routes slots 0,3,1,2,3,2 -> logical 0,1,1,2,1,2; rank 1 slots 0,1 -> 0,1
    assert series.loads.shape == (3, 2, 3)
    assert series.loads[0, 1].tolist() == [2, 4, 2]
    assert series.moe_layers.tolist() == [False, True]
    with pytest.raises(TraceError, match=r"has no topk_ids_of_layer .* window it by forward passes"):
        read_trace(sglang_dump(per_token=False), "dump.pt", unit="tokens")


def test_sglang_per_token_dump_splits_prefill_from_decode_and_windows_by_tokens():
    series = by_phase(read_trace(sglang_dump(per_token=True), "dump.pt"))
    assert series["prefill"].loads.shape == (1, 2, 3) and series["decode"].loads.shape == (2, 2, 3)
    tokens = by_phase(read_trace(sglang_dump(per_token=True), "dump.pt", unit="tokens", window=4))
    # decode: 2 passes x 2 ranks x 3 token rows = 12 tokens at layer 1 -> 3 windows of 4
    assert tokens["decode"].loads.shape[0] == 3
    assert tokens["decode"].loads.sum() == 2 * series["prefill"].loads.sum()


def routed_response(prompt: int, completion: int, layers: int, k: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    positions = prompt + completion - 1
    ids = np.stack([[rng.choice(8, k, replace=False) for _ in range(layers)] for _ in range(positions)])
    ids[:, 0, :] = 0  # a dense layer: SGLang's capture buffer never written there
    payload = base64.b64encode(ids.astype(np.int32).tobytes()).decode()
    return {"text": "...", "meta_info": {"prompt_tokens": prompt, "completion_tokens": completion,
                                         "routed_experts": payload}}, ids


def test_sglang_routed_experts_split_prompt_from_decode_and_find_the_dense_layer():
    response, ids = routed_response(5, 4, 3, 2, seed=1)
    data = json.dumps(response).encode()
    series = by_phase(read_trace(data, "response.json", layers=3, window=2, experts=8))
    prefill, decode = series["prefill"], series["decode"]
    assert prefill.moe_layers.tolist() == [False, True, True]
    assert prefill.loads.shape == (3, 3, 8) and decode.loads.shape == (2, 3, 8)  # 5 prompt tokens, 3 decoded
    direct = np.zeros((3, 8))
    for token in ids[:5]:
        for layer in (1, 2):
            direct[layer, token[layer]] += 1
    assert np.array_equal(prefill.loads.sum(0).numpy(), direct)
    second, _ = routed_response(3, 1, 3, 2, seed=2)
    lines = (json.dumps(response) + "\n" + json.dumps(second) + "\n").encode()
    both = by_phase(read_trace(lines, "responses.jsonl", layers=3, window=1, unit="forward passes"))
    assert both["prefill"].loads.shape[0] == 2 and both["decode"].loads.shape[0] == 3  # 2 prompts; 3 + 0 decoded
    by_k = read_trace(data, "response.json", top_k=2)
    assert torch.equal(by_k[0].loads.sum(0), prefill.loads.sum(0))
    with pytest.raises(TraceError, match="give layers= or top_k= to reshape them"):
        read_trace(data, "response.json")


def test_windowed_arrays_npy_pt_and_stat_mode_logical_count():
    loads = np.arange(5 * 3 * 4, dtype=np.int64).reshape(5, 3, 4)
    loads[:, 0] = 0
    buffer = io.BytesIO()
    np.save(buffer, loads)
    (series,) = read_trace(buffer.getvalue(), "trace.npy")
    assert series.unit == "windows" and series.window == 1 and series.moe_layers.tolist() == [False, True, True]
    assert np.array_equal(series.loads.numpy(), loads)
    (pairs,) = read_trace(buffer.getvalue(), "trace.npy", window=2)
    assert np.array_equal(pairs.loads.numpy()[:2], loads[:4].reshape(2, 2, 3, 4).sum(1))
    assert np.array_equal(pairs.loads.numpy()[2], loads[4])  # the last window holds what is left
    stat = io.BytesIO()
    torch.save({"rank": 0, "logical_count": torch.from_numpy(loads)}, stat)
    (from_pt,) = read_trace(stat.getvalue(), "dump.pt")
    (from_json,) = read_trace(json.dumps({"logical_count": loads.tolist()}).encode(), "dump.json")
    assert torch.equal(from_pt.loads, series.loads) and torch.equal(from_json.loads, series.loads)


def test_moe_layer_mask_marks_all_zero_layers_dense():
    loads = torch.ones(3, 4, 5)
    loads[:, 0] = 0
    loads[:, 2] = 0
    loads[1, 3] = 0  # zero in one window only is still a MoE layer
    assert moe_layer_mask(loads).tolist() == [False, True, False, True]
    assert moe_layer_mask(loads[0]).tolist() == [False, True, False, True]


BAD = {
    "bad ids": (b'layer,step,experts\n0,0,"[1, 2]"\n1,0,"[1, x]"\n', "log.csv",
                "log.csv: line 3, column 'experts': '[1, x]' is not a list of expert ids"),
    "bad layer": (b"layer,step,experts\n0,0,1 2\nfour,0,1 2\n", "log.csv",
                  "log.csv: line 3, column 'layer': 'four' is not a whole number"),
    "negative expert": (b"layer,step,experts\n0,0,1 2\n0,1,3 -4\n", "log.csv",
                        "log.csv: line 3, column 'experts': -4 is a negative expert id"),
    "bad phase": (b"layer,step,phase,experts\n0,0,prefill,1 2\n0,1,warmup,1 2\n", "log.csv",
                  "log.csv: line 3, column 'phase': 'warmup' is not a phase (prefill or decode)"),
    "ragged": (b"layer,step,experts\n0,0,1 2\n0,1\n", "log.csv", "log.csv: line 3 has 2 cells, line 1 names 3 columns"),
    "uneven top-k": (b"layer,step,experts\n0,0,1 2\n0,1,1 2 3\n", "log.csv",
                     "log.csv: line 3, column 'experts': 3 expert ids where the rows above hold 2"),
    "no header": (b"0,0,1\n", "log.csv", "log.csv: line 1 should name the columns"),
    "jsonl broken": (b'{"layer": 0, "step": 0, "experts": [1]}\n{"layer": 1,\n', "log.jsonl",
                     "log.jsonl: line 2 is not valid JSON"),
    "jsonl missing": (b'{"layer": 0, "step": 0, "experts": [1]}\n{"layer": 1, "experts": [2]}\n', "log.jsonl",
                      "log.jsonl: line 2 has no 'step'"),
    "suffix": (b"abc", "trace.xlsx", "trace.xlsx: unknown trace type '.xlsx'"),
    "empty": (b"", "log.csv", "log.csv: the file is empty"),
    "pickle": (pickle.dumps({"records": [object()]}), "dump.pt", "refused: it holds Python objects"),
    "json kind": (b'{"layers": [1, 2]}', "dump.json", "expected 'logical_count' or SGLang responses"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inputs_get_one_sentence_naming_line_column_and_value(case):
    data, name, message = BAD[case]
    with pytest.raises(TraceError) as error:
        read_trace(data, name)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_bad_npy_rows_and_windows_name_the_row_and_value():
    rows = np.array([[0, 0, 1, 2], [1, 0, 3, -5]], dtype=np.int64)
    buffer = io.BytesIO()
    np.save(buffer, rows)
    with pytest.raises(TraceError, match=r"log.npy: row 2, column 'experts': -5 is a negative expert id"):
        read_trace(buffer.getvalue(), "log.npy")
    loads = np.ones((2, 2, 3))
    loads[1, 0, 2] = -1
    buffer = io.BytesIO()
    np.save(buffer, loads)
    with pytest.raises(TraceError, match=r"window 1, layer 0, expert 2: -1.0 is negative"):
        read_trace(buffer.getvalue(), "trace.npy")
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TraceError, match="Python objects"):
        read_trace(objects.getvalue(), "log.npy")


def test_option_errors_are_sentences():
    with pytest.raises(TraceError, match="unit 'hours' is not one of"):
        read_trace(csv_text(ROWS), "log.csv", unit="hours")
    with pytest.raises(TraceError, match="window 0 is not a whole number of at least 1"):
        read_trace(csv_text(ROWS), "log.csv", window=0)
    with pytest.raises(TraceError, match="line 2, column 'experts': 2 is past the 2 experts given"):
        read_trace(csv_text(ROWS), "log.csv", experts=2)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.sampled_from(["prefill", "decode"]),
                               st.lists(st.integers(-1, 4), min_size=3, max_size=3)), min_size=1, max_size=40),
       window=st.integers(1, 4), unit=st.sampled_from(["tokens", "forward passes"]))
def test_every_route_lands_in_exactly_one_window_of_its_phase(rows, window, unit):
    if all(e < 0 for r in rows for e in r[3]):
        return  # nothing routed: a trace of no tokens is refused, tested above
    series = read_trace(csv_text(rows), "log.csv", window=window, unit=unit)
    for s in series:
        mine = [r for r in rows if r[2] == s.phase]
        routed = sum(1 for r in mine for e in r[3] if e >= 0)
        assert s.loads.sum() == routed
        want = expected([(r[0], r[1], r[2], [e for e in r[3] if e >= 0]) for r in mine], s.phase, window,
                        "tokens" if unit == "tokens" else "passes", *s.loads.shape[1:])
        assert np.array_equal(s.loads.numpy()[: len(want)], want)
        assert s.loads.shape[0] == len(want) or not s.loads[len(want):].any()


def large_npy_log(path, rows: int, seed: int) -> np.ndarray:
    """[rows, 4] int32: layer, step, two expert ids; 64 tokens a pass."""
    rng = np.random.default_rng(seed)
    log = np.empty((rows, 4), dtype=np.int32)
    log[:, 0] = np.arange(rows) % 27
    log[:, 1] = np.arange(rows) // (27 * 64)
    log[:, 2:] = rng.integers(0, 64, size=(rows, 2))
    np.save(path, log)
    return log


def peak_bytes(read) -> int:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_npy_log_is_read_in_bounded_memory_and_counts_exactly(tmp_path):
    # 2.5 million token rows, 5 million routes: 40 MB on disk
    log = large_npy_log(tmp_path / "big.npy", 2_500_000, seed=0)
    half = large_npy_log(tmp_path / "half.npy", 1_250_000, seed=1)
    direct = np.zeros(((log[:, 1].max() // 16) + 1, 27, 64))
    for column in (2, 3):
        np.add.at(direct, (log[:, 1] // 16, log[:, 0], log[:, column]), 1)
    del log, half
    result = []
    peak = peak_bytes(lambda: result.append(read_trace(tmp_path / "big.npy", window=16)))
    peak_half = peak_bytes(lambda: read_trace(tmp_path / "half.npy", window=16))
    assert np.array_equal(result[0][0].loads.numpy(), direct)
    output = direct.nbytes
    assert peak < 16 * 2**20 + 3 * output  # the file is 40 MB
    assert peak < 1.25 * peak_half + 3 * output  # twice the rows, not twice the memory


def test_a_large_csv_log_is_read_in_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(traces, "CHUNK_ROWS", 8192)
    rng = np.random.default_rng(2)

    def write(path, rows, k=16):
        ids = rng.integers(0, 64, size=(rows, k))
        with open(path, "w") as handle:
            handle.write("layer,step,experts\n")
            for start in range(0, rows, 25_000):
                block = range(start, min(rows, start + 25_000))
                handle.write("".join(f'{i % 27},{i // 1728},"{" ".join(map(str, ids[i]))}"\n' for i in block))
        return ids

    rows = 125_000  # 2 million routes, 10 MB of text; held whole as Python lists, over 30 MB
    ids = write(tmp_path / "big.csv", rows)
    write(tmp_path / "quarter.csv", rows // 4)
    index = np.arange(rows)
    direct = np.zeros((rows // 1728 + 1, 27, 64))
    for column in range(ids.shape[1]):
        np.add.at(direct, (index // 1728, index % 27, ids[:, column]), 1)
    del ids, index
    result = []
    peak = peak_bytes(lambda: result.append(read_trace(tmp_path / "big.csv")))
    peak_quarter = peak_bytes(lambda: read_trace(tmp_path / "quarter.csv"))
    assert np.array_equal(result[0][0].loads.numpy(), direct)
    assert peak < 1.3 * peak_quarter + 3 * direct.nbytes  # four times the rows, not four times the memory
    assert peak < 24 * 2**20

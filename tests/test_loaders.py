"""Readers: every format round-trips, every bad file gets its own clear message."""

from __future__ import annotations

import io
import json
from pathlib import Path

import make_bad_inputs
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packviz.loaders import LoadError, read_loads

BAD = Path(__file__).resolve().parent / "bad_inputs"
MATRIX = torch.tensor([[90.0, 132, 40, 61], [20, 107, 104.5, 64]], dtype=torch.float64)

EXPECTED = {
    "ragged.csv": "row 2 has 3 values, row 1 has 4",
    "text_cell.csv": "row 2, column 2: 'abc' is not a number",
    "nan.csv": "row 2, column 2: 'nan' is not a finite number",
    "inf.csv": "row 2, column 3: 'inf' is not a finite number",
    "negative.csv": "row 2, column 4: '-8' is negative",
    "empty.csv": "the file is empty",
    "header_only.csv": "only a header row",
    "one_by_one.csv": "at least 2 items, found shape (1, 1)",
    "blank_middle_row.csv": "row 2 is blank",
    "empty_cell.csv": "row 2, column 2 is empty",
    "not_utf8.csv": "not UTF-8 text",
    "binary.csv": "NUL bytes",
    "three_d.npy": "found 3 dimensions of shape (2, 3, 4)",
    "object_array.npy": "Python objects",
    "huge_declared.npy": "declares shape (100000, 100000)",
    "truncated.npy": "not a valid .npy array",
    "two_arrays.npz": "holds 2 arrays (first, second); say which one",
    "pickle_bomb.pt": "refused: it holds Python objects",
    "pickle_bomb.npy": "Python objects",
    "wrong_shape.json": "without 'logical_count'; its keys: layers",
    "ragged.json": "row 2 has 2 values, row 1 has 3",
    "strings.json": "row 1, column 2: 'two' is not a number",
    "placement.json": "that is a placement, not loads",
    "broken.json": "not valid JSON",
    "scalar.json": "a single number",
    "not_a_zip.pt": "not a readable torch file",
    "complex.npy": "complex128",
    "wrong_suffix.xlsx": "unknown file type '.xlsx'",
}


def test_the_corpus_has_at_least_20_files_and_each_is_listed():
    names = sorted(p.name for p in BAD.iterdir())
    assert len(names) >= 20
    assert sorted(EXPECTED) == names


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file_gets_its_own_clear_message(name):
    with pytest.raises(LoadError) as error:
        read_loads(BAD / name)
    message = str(error.value)
    assert message.startswith(f"{name}:")
    assert EXPECTED[name] in message
    assert "Traceback" not in message


def test_bad_bytes_from_an_upload_give_the_same_message():
    with pytest.raises(LoadError, match="row 2, column 2: 'abc' is not a number"):
        read_loads((BAD / "text_cell.csv").read_bytes(), "upload.csv")


def test_the_corpus_is_what_make_bad_inputs_writes(tmp_path):
    make_bad_inputs.main(tmp_path)
    for path in BAD.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize(
    ("name", "make_bomb", "load_unsafely"),
    [
        ("bomb.pt", make_bad_inputs.pickle_bomb_pt, lambda data: torch.load(io.BytesIO(data), weights_only=False)),
        ("bomb.npy", make_bad_inputs.pickle_bomb_npy, lambda data: np.load(io.BytesIO(data), allow_pickle=True)),
    ],
)
def test_pickle_bombs_never_run(tmp_path, name, make_bomb, load_unsafely):
    marker = tmp_path / "bomb ran"
    bomb = make_bomb(marker)
    with pytest.raises(LoadError, match="Python objects"):
        read_loads(bomb, name)
    assert not marker.exists()
    # the same bytes do run when unpickled, so the check above can fail
    load_unsafely(bomb)
    assert marker.exists()


def _csv(text: str, name: str = "m.csv"):
    return read_loads(text.encode(), name)


@pytest.mark.parametrize(
    ("text", "name", "names"),
    [
        ("90,132,40,61\n20,107,104.5,64\n", "m.csv", None),
        ("a,b,c,d\n90,132,40,61\n20,107,104.5,64\n\n\n", "m.csv", ("a", "b", "c", "d")),
        ("\ufefflayer,e0,e1,e2,e3\n0,90,132,40,61\n1,20,107,104.5,64\n", "m.csv", ("e0", "e1", "e2", "e3")),
        ('"90","132","40","61"\n"20","107","104.5","64"\n', "m.csv", None),
        ("90\t132\t40\t61\n20\t107\t104.5\t64\n", "m.tsv", None),
        ("90;132;40;61\n20;107;104.5;64\n", "m.txt", None),
        ("L0,90,132,40,61\nL1,20,107,104.5,64\n", "m.csv", None),
        ("layer,0,1,2,3\n0,90,132,40,61\n1,20,107,104.5,64\n", "m.csv", ("0", "1", "2", "3")),
    ],
)
def test_delimited_text_variants(text, name, names):
    loaded = _csv(text, name)
    assert torch.equal(loaded.weight, MATRIX)
    assert loaded.item_names == names


def test_npy_npz_pt_json_round_trip(tmp_path):
    np.save(tmp_path / "m.npy", MATRIX.numpy())
    np.savez(tmp_path / "one.npz", loads=MATRIX.numpy())
    np.savez(tmp_path / "two.npz", loads=MATRIX.numpy(), other=np.zeros(3))
    torch.save(MATRIX, tmp_path / "m.pt")
    torch.save({"logical_count": MATRIX.round().to(torch.int64)}, tmp_path / "d.pt")
    (tmp_path / "m.json").write_text(json.dumps(MATRIX.tolist()))
    (tmp_path / "d.json").write_text(json.dumps({"logical_count": MATRIX.tolist()}))
    for name in ("m.npy", "one.npz", "m.pt", "m.json", "d.json"):
        assert torch.equal(read_loads(tmp_path / name).weight, MATRIX), name
    assert torch.equal(read_loads(tmp_path / "two.npz", array_name="loads").weight, MATRIX)
    assert torch.equal(read_loads(tmp_path / "d.pt").weight, MATRIX.round())


def test_time_axis_is_summed_or_kept():
    steps = torch.arange(2 * 3 * 4, dtype=torch.int64).view(2, 3, 4)
    buffer = io.BytesIO()
    torch.save({"logical_count": steps, "rank": 0}, buffer)
    summed = read_loads(buffer.getvalue(), "dump.pt")
    assert torch.equal(summed.weight, steps.sum(0).double())
    assert summed.time_axis is None
    kept = read_loads(buffer.getvalue(), "dump.pt", keep_time_axis=True)
    assert torch.equal(kept.time_axis, steps.double())
    assert "summed over 2 steps" in kept.description


def test_one_row_is_one_layer_and_size_cap_is_settable():
    assert read_loads(b"1,2,3,4\n", "m.csv").weight.shape == (1, 4)
    with pytest.raises(LoadError, match="more than the limit of 5"):
        read_loads(b"1,2,3\n4,5,6\n", "m.csv", max_values=5)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".npy", ".npz", ".pt", ".json", ".tsv"]))
def test_random_bytes_only_ever_raise_load_error(data, suffix):
    try:
        loaded = read_loads(data, "random" + suffix)
    except LoadError:
        return
    assert loaded.weight.dtype == torch.float64 and loaded.weight.dim() == 2


almost_csv = st.lists(
    st.lists(st.one_of(st.integers(-5, 1000).map(str), st.floats(allow_nan=True).map(str),
                       st.sampled_from(["", " ", "abc", '"7"', "1e3", "inf", "-0", "nan", "\"", "1,5"])),
             min_size=1, max_size=6),
    min_size=1, max_size=6,
).map(lambda rows: "\n".join(",".join(row) for row in rows))


@settings(max_examples=300, deadline=None)
@given(text=almost_csv)
def test_almost_csv_text_only_ever_raises_load_error(text):
    try:
        loaded = read_loads(text.encode(), "almost.csv")
    except LoadError:
        return
    weight = loaded.weight
    assert bool(torch.isfinite(weight).all()) and bool((weight >= 0).all()) and weight.shape[1] >= 2

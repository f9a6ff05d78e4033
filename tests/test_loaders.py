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

from packviz.data.loaders import LoadError, read_loads

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
    "mixed_separators.csv": "row 3 is one cell '1;4;5;6': the columns are separated by ',' in this file's header "
    "(row 1), but row 3 uses ';' instead",
    "pipe_separated.csv": "row 1 is one cell '1|2|3': packviz found no ',', tab or ';' that splits it into columns; "
    "it seems to use '|'",
    "commas_in.tsv": "row 1 is one cell '1,2,3': a .tsv file separates its columns with tabs; it seems to use ','",
    "mixed_decimal_marks.csv": "row 3, column 2: '2.5' has a '.' but row 2, column 2: '1,5' writes decimals with ','",
    "quoted_decimal_comma.csv": "row 1, column 1: '1,5' is not a number (write decimals with '.'",
    "only_labels.csv": "column 1 is read as labels (row 1: 'layer') and no column of loads follows it",
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
        # Excel in locales whose decimal mark is ',' writes ';' between the columns of a .csv
        ("90;132;40;61\n20;107;104.5;64\n", "m.csv", None),
        ("layer;e0;e1;e2;e3\r\n0;90;132;40;61\r\n1;20;107;104,5;64\r\n", "m.csv", ("e0", "e1", "e2", "e3")),
        ("90\t132\t40\t61\n20\t107\t104.5\t64\n", "m.csv", None),
        ("up\tdown\tleft\tright\n90\t132\t40\t61\n20\t107\t104.5\t64\n", "m.tsv", ("up", "down", "left", "right")),
        ("layer\te0\te1\te2\te3\n0\t90\t132\t40\t61\n1\t20\t107\t104.5\t64\n", "m.txt", ("e0", "e1", "e2", "e3")),
        ("w;x;y;z\n90;132;40;61\n20;107;104,5;64\n", "m.ssv", ("w", "x", "y", "z")),
        ('"expert 0","expert 1","expert 2","expert 3"\n90,132,40,61\n20,107,104.5,64\n', "m.csv",
         ("expert 0", "expert 1", "expert 2", "expert 3")),
    ],
)
def test_delimited_text_variants(text, name, names):
    loaded = _csv(text, name)
    assert torch.equal(loaded.weight, MATRIX)
    assert loaded.item_names == names


def test_the_semicolon_csv_from_the_issue_reads_with_its_names_and_decimal_commas():
    loaded = _csv("layer;e0;e1\n0;1,5;2\n1;3;4,25\n")
    assert torch.equal(loaded.weight, torch.tensor([[1.5, 2.0], [3.0, 4.25]], dtype=torch.float64))
    assert loaded.item_names == ("e0", "e1")
    assert "semicolon-separated text, decimal commas, header row, index column" in loaded.description


def test_comma_is_the_separator_when_the_content_fits_it():
    # '1,5' could be one decimal-comma value per row, but a .csv whose rows all split evenly on ',' is read that way
    loaded = _csv("1,5\n2,5\n")
    assert torch.equal(loaded.weight, torch.tensor([[1.0, 5.0], [2.0, 5.0]], dtype=torch.float64))
    assert "comma-separated" in loaded.description
    # only ';' makes every cell of these rows a number
    loaded = _csv("1,2;3,4\n5,6;7,8\n")
    assert torch.equal(loaded.weight, torch.tensor([[1.2, 3.4], [5.6, 7.8]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("a,b,c\n1;2;3\n", "m.csv", "m.csv: row 2 is one cell '1;2;3': the columns are separated by ',' in this "
         "file's header (row 1), but row 2 uses ';' instead; use one throughout"),
        ("a,b,c\n1;2;3\n4;5;6\n", "m.csv", "m.csv: row 1 is one cell 'a,b,c': the columns are separated by ';' in "
         "row 2, but row 1 uses ',' instead; use one throughout"),
        ("1,2,3\n4\t5\t6\n", "m.csv", "m.csv: row 2 is one cell '4\\t5\\t6': the columns are separated by ',' in "
         "row 1, but row 2 uses tabs instead; use one throughout"),
        ("a,b,c\nlayer one\n", "m.csv", "m.csv: row 2 is one cell 'layer one': the columns are separated by ',' in "
         "this file's header (row 1), but row 2 holds no ','"),
        ("1;2;3\n" + "4,5,6" * 20 + "\n", "m.ssv", "m.ssv: row 2 is one cell '4,5,64,5,64,5,64,5,64,5,64,5,64,5,64,5,6'"
         "...: the columns are separated by ';' in row 1, but row 2 uses ',' instead; use one throughout"),
        ("1 2 3\n4 5 6\n", "m.txt", "m.txt: row 1 is one cell '1 2 3': packviz found no ',', tab or ';' that splits "
         "it into columns; it seems to use spaces"),
        ("1;2\n3;4\n", "m.tsv", "m.tsv: row 1 is one cell '1;2': a .tsv file separates its columns with tabs; it "
         "seems to use ';'"),
        ("a\tb\n1,5\t2\n", "m.tsv", "m.tsv: row 2, column 1: '1,5' is not a number (write decimals with '.' and no "
         "thousands separators; a decimal ',' is read only in files whose columns are separated by ';')"),
        ("a;b\n1.234,5;2\n", "m.csv", "m.csv: row 2, column 1: '1.234,5' is not a number (write numbers without "
         "thousands separators)"),
        ("1,2,3\n4,5\t6,7\n", "m.csv", "m.csv: row 2, column 2: '5\\t6' is not a number (it holds tabs, but this "
         "file's columns are separated by ',')"),
    ],
)
def test_rows_split_by_the_wrong_separator_are_named(text, name, message):
    with pytest.raises(LoadError) as error:
        _csv(text, name)
    assert str(error.value) == message


def test_a_cell_longer_than_the_csv_field_limit_is_a_load_error():
    with pytest.raises(LoadError, match=r"^m.csv: row 2: field larger than field limit"):
        _csv("1,2\n3," + "4" * 200_000 + "\n")


def test_binary_and_json_formats_carry_no_item_names(tmp_path):
    np.save(tmp_path / "m.npy", MATRIX.numpy())
    np.savez(tmp_path / "m.npz", loads=MATRIX.numpy())
    torch.save({"logical_count": MATRIX}, tmp_path / "m.pt")
    (tmp_path / "m.json").write_text(json.dumps({"logical_count": MATRIX.tolist()}))
    for name in ("m.npy", "m.npz", "m.pt", "m.json"):
        loaded = read_loads(tmp_path / name)
        assert torch.equal(loaded.weight, MATRIX), name
        assert loaded.item_names is None, name


loads_matrix = st.integers(1, 4).flatmap(
    lambda items: st.lists(
        st.lists(st.floats(0, 1e6, allow_subnormal=False), min_size=items + 1, max_size=items + 1),
        min_size=1, max_size=4,
    )
)


@settings(max_examples=200, deadline=None)
@given(rows=loads_matrix, separator=st.sampled_from([",", ";", "\t"]), decimal_comma=st.booleans(),
       index=st.booleans())
def test_any_matrix_written_with_any_separator_reads_back_with_its_names(rows, separator, decimal_comma, index):
    decimal_comma = decimal_comma and separator == ";"
    names = [f"expert_{i}" for i in range(len(rows[0]))]
    lines = [separator.join((["layer"] if index else []) + names)]
    for number, row in enumerate(rows):
        cells = [repr(value).replace(".", ",") if decimal_comma else repr(value) for value in row]
        lines.append(separator.join(([str(number)] if index else []) + cells))
    loaded = _csv("\n".join(lines) + "\n")
    assert torch.equal(loaded.weight, torch.tensor(rows, dtype=torch.float64))
    assert loaded.item_names == tuple(names)


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


almost_csv = st.tuples(
    st.lists(
        st.lists(st.one_of(st.integers(-5, 1000).map(str), st.floats(allow_nan=True).map(str),
                           st.sampled_from(["", " ", "abc", '"7"', "1e3", "inf", "-0", "nan", "\"", "1,5", "2;3",
                                            "1.5,2", "4\t5", "1|2"])),
                 min_size=1, max_size=6),
        min_size=1, max_size=6,
    ),
    st.sampled_from([",", ";", "\t"]),
).map(lambda rows_and_separator: "\n".join(rows_and_separator[1].join(row) for row in rows_and_separator[0]))


@settings(max_examples=300, deadline=None)
@given(text=almost_csv)
def test_almost_csv_text_only_ever_raises_load_error(text):
    try:
        loaded = read_loads(text.encode(), "almost.csv")
    except LoadError:
        return
    weight = loaded.weight
    assert bool(torch.isfinite(weight).all()) and bool((weight >= 0).all()) and weight.shape[1] >= 2


def test_the_description_writes_totals_in_digits():
    sample = Path(__file__).resolve().parent.parent / "sample_data" / "deepseek_v3_58x256.csv"
    assert read_loads(sample).description.endswith("whole-number loads, total 30,408,705")
    assert read_loads(b"0.5,0.25\n", "a.csv").description.endswith("real loads, total 0.75")
    assert read_loads(b"1234.5,1\n", "a.csv").description.endswith("real loads, total 1,235.50")


def test_a_random_binary_named_pt_is_not_called_a_file_of_python_objects():
    data = bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1)).to(torch.uint8).tolist())
    assert not data.startswith(b"PK")
    with pytest.raises(LoadError) as error:
        read_loads(data, "weights.pt")
    message = str(error.value)
    assert "Python objects" not in message
    assert message.startswith("weights.pt: not a readable torch file: torch.save writes a zip archive")


def test_nan_in_a_torch_file_is_named_plainly():
    buffer = io.BytesIO()
    torch.save({"logical_count": torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, float("nan")]])}, buffer)
    with pytest.raises(LoadError) as error:
        read_loads(buffer.getvalue(), "dump.pt")
    assert str(error.value) == "dump.pt: NaN at layer 1, expert 2 (counted from 0)"
    buffer = io.BytesIO()
    torch.save(torch.tensor([[[1.0, float("inf")], [1.0, -2.0]]]), buffer)
    with pytest.raises(LoadError, match=r"infinite or negative") as error:
        read_loads(buffer.getvalue(), "steps.pt")
    assert str(error.value).startswith("steps.pt: inf at step 0, layer 0, expert 1 (counted from 0); 2 values")

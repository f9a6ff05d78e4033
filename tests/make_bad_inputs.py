"""Writes the corpus of bad load files in tests/bad_inputs/ (the files are committed; the tests check that
this script still writes them byte for byte). Usage: python tests/make_bad_inputs.py [OUT_DIR]."""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "bad_inputs"
# Where the committed bombs would leave their mark; tests build their own bombs aimed at tmp_path.
DEFAULT_MARKER = Path("/tmp/packviz_pickle_bomb_ran")


class Bomb:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def pickle_bomb_pt(marker: Path = DEFAULT_MARKER) -> bytes:
    """A torch zip archive whose pickle calls os.system when loaded without weights_only."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # a fixed timestamp so that the committed file is reproducible
        for member, content in (
            ("archive/data.pkl", pickle.dumps({"logical_count": Bomb(marker)}, protocol=2)),
            ("archive/version", b"3\n"),
        ):
            archive.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return buffer.getvalue()


def pickle_bomb_npy(marker: Path = DEFAULT_MARKER) -> bytes:
    """An object-dtype .npy whose pickled payload calls os.system when loaded with allow_pickle=True."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return header.getvalue() + pickle.dumps(np.array([Bomb(marker)], dtype=object), protocol=2)


def npy_with_shape(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 64


def main(out: Path = HERE) -> None:
    out.mkdir(exist_ok=True)
    files: dict[str, bytes | str] = {
        "ragged.csv": "1,2,3,4\n5,6,7\n",
        "text_cell.csv": "1,2,3,4\n5,abc,7,8\n9,10,11,12\n",
        "nan.csv": "1,2,3,4\n5,nan,7,8\n",
        "inf.csv": "1,2,3,4\n5,6,inf,8\n",
        "negative.csv": "1,2,3,4\n5,6,7,-8\n",
        "empty.csv": "",
        "header_only.csv": "a,b,c,d\n",
        "one_by_one.csv": "7\n",
        "blank_middle_row.csv": "1,2,3\n\n4,5,6\n",
        "empty_cell.csv": "1,2,3\n4,,6\n",
        "not_utf8.csv": b"1,2,3\n4,\xff\xfe,6\n",
        "binary.csv": b"\x00\x01\x02PK\x03\x04",
        "three_d.npy": b"",
        "object_array.npy": b"",
        "huge_declared.npy": npy_with_shape((100_000, 100_000)),
        "truncated.npy": b"",
        "two_arrays.npz": b"",
        "pickle_bomb.pt": b"",
        "pickle_bomb.npy": b"",
        "wrong_shape.json": json.dumps({"layers": [1, 2, 3]}),
        "ragged.json": json.dumps([[1, 2, 3], [4, 5]]),
        "strings.json": json.dumps([[1, "two", 3]]),
        "placement.json": json.dumps({"physical_to_logical_map": [[0, 1, 2, 3]]}),
        "broken.json": "[[1, 2, 3], [4, 5",
        "scalar.json": "42",
        "not_a_zip.pt": b"this is not a torch file",
        "complex.npy": b"",
        "wrong_suffix.xlsx": b"PK\x03\x04",
        # a row whose separator is not the one the rest of the file uses (Excel in another locale)
        "mixed_separators.csv": "layer,e0,e1,e2\n0,1,2,3\n1;4;5;6\n",
        "pipe_separated.csv": "1|2|3\n4|5|6\n",
        "commas_in.tsv": "1,2,3\n4,5,6\n",
        # '2.5' in a file that writes '1,5' could be 25 with a thousands separator
        "mixed_decimal_marks.csv": "layer;e0;e1\n0;1,5;2\n1;2.5;3\n",
        # Excel quotes decimal commas in comma-separated files; '1,5' could as well be 15 with a thousands separator
        "quoted_decimal_comma.csv": '"1,5","2"\n"3","4"\n',
        "only_labels.csv": "layer\n0\n1\n",
    }
    buffer = io.BytesIO()
    np.save(buffer, np.ones((2, 3, 4)))
    files["three_d.npy"] = buffer.getvalue()
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1, "a"], [2, None]], dtype=object), allow_pickle=True)
    files["object_array.npy"] = buffer.getvalue()
    buffer = io.BytesIO()
    np.save(buffer, np.arange(100, dtype=np.float64).reshape(10, 10))
    files["truncated.npy"] = buffer.getvalue()[:200]
    buffer = io.BytesIO()
    np.savez(buffer, first=np.ones((2, 4)), second=np.zeros((2, 4)))
    files["two_arrays.npz"] = buffer.getvalue()
    files["pickle_bomb.pt"] = pickle_bomb_pt()
    files["pickle_bomb.npy"] = pickle_bomb_npy()
    buffer = io.BytesIO()
    np.save(buffer, np.ones((2, 4), dtype=np.complex128))
    files["complex.npy"] = buffer.getvalue()
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (out / name).write_bytes(data)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)

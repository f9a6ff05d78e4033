"""The moves between two plans as CSV, ``layer,expert,replica,from_node,from_gpu,from_slot,to_node,to_gpu,
to_slot,bytes``, both ways."""

from __future__ import annotations

import csv
import io

import torch

from packviz.eplb.moves import MOVE_COLUMNS, Moves
from packviz.io.engines.base import PlanFileError
from packviz.io.engines.csv import table_csv


def moves_csv(moves: Moves) -> str:
    """One row per moved replica."""
    return table_csv(moves.rows(), MOVE_COLUMNS)


def read_moves_csv(text: str, num_gpus: int, name: str = "moves CSV") -> Moves:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != MOVE_COLUMNS:
        raise PlanFileError(f"{name}: expected the columns {','.join(MOVE_COLUMNS)}")
    try:
        table = torch.tensor([[int(v) for v in row] for row in rows[1:] if row], dtype=torch.int64)
    except ValueError:
        raise PlanFileError(f"{name}: every cell must be a whole number") from None
    table = table.reshape(-1, len(MOVE_COLUMNS))
    return Moves(**{column: table[:, index] for index, column in enumerate(MOVE_COLUMNS)}, num_gpus=num_gpus)

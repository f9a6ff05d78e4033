"""A whole EPLB plan written for people and serving engines, and read back: the names the Deploy page and
the ``rebalance`` command import. Each format lives in its own module under :mod:`packviz.io.engines`; the
moves between two plans in :mod:`packviz.io.moves`."""

from __future__ import annotations

from packviz.io.engines import read_placement, read_plan
from packviz.io.engines.base import EnginePlacement, PlanFileError
from packviz.io.engines.csv import DEPLOY_COLUMNS, placement_csv, read_placement_csv
from packviz.io.engines.sglang import read_sglang_json, sglang_json, sglang_logical_count_json
from packviz.io.engines.trtllm import read_trtllm_yaml, trtllm_yaml
from packviz.io.engines.vllm import vllm_json
from packviz.io.engines.vllm_ascend import vllm_ascend_json
from packviz.io.moves import moves_csv, read_moves_csv

__all__ = ["DEPLOY_COLUMNS", "EnginePlacement", "PlanFileError", "moves_csv", "placement_csv", "read_moves_csv",
           "read_placement", "read_placement_csv", "read_plan", "read_sglang_json", "read_trtllm_yaml",
           "sglang_json", "sglang_logical_count_json", "trtllm_yaml", "vllm_ascend_json", "vllm_json"]

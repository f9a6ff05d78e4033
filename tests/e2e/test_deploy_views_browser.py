"""Deploy's views in headless Chromium at 1366 x 768: dense layers drawn as such, Balance's table whole."""

from __future__ import annotations

from pathlib import Path

import torch

from packviz.data.loaders import read_loads
from scripts.browser import chromium_page, running_app, wait_until_idle

ROOT = Path(__file__).resolve().parent.parent.parent


def settle(page) -> None:
    page.wait_for_timeout(800)
    wait_until_idle(page, 300_000)


def view(page, name: str) -> None:
    page.locator('[data-testid="stMain"] [data-testid="stRadio"]').get_by_text(name, exact=True).first.click()
    settle(page)


def test_dense_layers_are_drawn_as_dense_and_the_balance_table_fits_1366_px(tmp_path):
    experts = read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight
    dense = torch.cat([torch.zeros(3, 256, dtype=experts.dtype), experts])
    upload = tmp_path / "dsv3_61.csv"
    upload.write_text("\n".join(",".join(str(int(v)) for v in row) for row in dense.tolist()) + "\n")
    with running_app() as url, chromium_page(1366, 768) as page:
        page.goto(f"{url}/deploy")
        settle(page)
        page.get_by_text("Checks pass").wait_for(timeout=120_000)
        view(page, "Balance")
        page.get_by_text("The price of the hierarchy").wait_for(timeout=300_000)
        # the table takes the main column's width (beside the chart, in 3/5 of it, its last columns were cut)
        table = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
        main = page.locator('[data-testid="stMainBlockContainer"]').first.bounding_box()
        assert table is not None and main is not None
        assert table["width"] >= 0.8 * main["width"] and table["x"] + table["width"] <= 1366
        view(page, "Placement")
        page.locator('[data-testid="stSidebar"] [data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
        settle(page)
        page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files(str(upload))
        settle(page)
        page.get_by_text("58 MoE layers of 61").first.wait_for(timeout=120_000)
        # the heatmap labels the dense rows; layer 0 itself is drawn as dense
        page.locator("text=layers 0-2: dense, no load").first.wait_for(timeout=60_000)
        layer = page.get_by_label("Layer", exact=True)
        layer.fill("0")
        layer.press("Enter")
        settle(page)
        page.get_by_role("heading", name="Layer 0: dense, no load").wait_for(timeout=60_000)
        page.locator("text=layer 0: dense, no load (no experts to balance)").first.wait_for(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0

"""The library as people install it: the wheel builds from the checkout, installs
into a fresh virtual environment without network, and works there from a
directory outside the repository (console script, pack, EPLB, samples), with
only the library's files and no Streamlit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parent.parent
# What a build never needs: environments, caches, earlier builds.
SKIP = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis",
                              "build", "dist", "*.egg-info", "artifacts", "node_modules")
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}

# DeepSeek EPLB's README example (FACTS.md): rebalance_experts(weight, 16, 4, 2, 8)
README_WEIGHT = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                 [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]
README_PHY2LOG = [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                  [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]
README_LOGCNT = [[1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 1],
                 [1, 2, 1, 1, 1, 2, 2, 1, 2, 1, 1, 1]]

# Runs inside the fresh environment; prints one JSON line of what it saw.
PROBE = textwrap.dedent("""
    import json, sys
    import torch
    import packviz
    from packviz.data.samples import SAMPLES, load_sample
    from packviz.eplb import rebalance_experts
    from packviz.validate import check_placement

    weight = torch.tensor([[5.0, 9, 1, 7, 3, 3, 8, 2], [1.0, 1, 1, 1, 1, 1, 1, 1]])
    result = packviz.pack(weight, 4, "fast")
    check_placement(weight, result.pack_index, result.rank_in_pack, result.pack_loads, 4, "installed")
    phy2log, log2phy, logcnt = rebalance_experts(torch.tensor(WEIGHT), 16, 4, 2, 8)
    print(json.dumps({
        "packviz_file": packviz.__file__,
        "pack_loads": result.pack_loads.tolist(),
        "phy2log": phy2log.tolist(),
        "logcnt": logcnt.tolist(),
        "sample_shapes": [list(load_sample(label).weight.shape) for label in SAMPLES],
        "app_modules": sorted(m for m in ("streamlit", "plotly", "orjson") if m in sys.modules),
    }))
""").replace("WEIGHT", repr(README_WEIGHT))


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env.update(OFFLINE, **extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """Build the wheel from a copy of the checkout, install it into a new venv
    without its dependencies, and let that venv see this environment's
    torch/numpy/PyYAML through a .pth line (a venv made with
    --system-site-packages from inside a venv would see the base interpreter,
    which has none of them)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=SKIP)
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist),
          str(source)], cwd=work, env=_clean_env())
    (wheel,) = dist.glob("packviz-*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work, env=_clean_env())
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
         cwd=work, env=_clean_env())
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=work, env=_clean_env()).stdout.strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    outside = work / "elsewhere"
    outside.mkdir()
    return {"wheel": wheel, "venv": venv, "python": python, "site": site, "outside": outside}


def test_the_wheel_holds_the_library_and_nothing_else(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"packviz", "packviz-0.1.0.dist-info"}, top
    assert "packviz/py.typed" in names
    # every subpackage of the checkout is in the wheel (a new one missing from pyproject.toml fails here)
    subpackages = {str(init.parent.relative_to(ROOT)).replace(os.sep, "/")
                   for init in (ROOT / "packviz").rglob("__init__.py")}
    assert {f"{package}/__init__.py" for package in subpackages} <= set(names)
    # the samples load_sample reads, and not the script that makes them
    shipped = {name.split("/")[-1] for name in names if name.startswith("packviz/sample_data/")}
    from packviz.data.samples import SAMPLES
    assert {sample.file_name for sample in SAMPLES.values()} <= shipped
    assert not any(name.endswith(".py") for name in shipped)


def test_the_dependencies_are_torch_numpy_yaml_and_the_app_is_an_extra(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        metadata = wheel.read("packviz-0.1.0.dist-info/METADATA").decode()
        entry_points = wheel.read("packviz-0.1.0.dist-info/entry_points.txt").decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in requires if "extra ==" not in r}
    app = {r.split(">")[0].strip() for r in requires if 'extra == "app"' in r}
    assert core == {"torch", "numpy", "PyYAML"}
    assert {"streamlit", "plotly", "orjson"} <= app
    torch_spec = next(r for r in requires if r.startswith("torch"))
    assert "==" not in torch_spec, "an exact torch pin would force a download of several gigabytes"
    assert "packviz = packviz.cli:main" in entry_points


def test_the_console_script_runs_outside_the_checkout(installed):
    script = installed["venv"] / ("Scripts/packviz.exe" if os.name == "nt" else "bin/packviz")
    done = _run([str(script), "--help"], cwd=installed["outside"], env=_clean_env())
    assert "pack" in done.stdout and "rebalance" in done.stdout
    sample = installed["site"] / "packviz" / "sample_data" / "deepseek_readme.csv"
    out = installed["outside"] / "placement.csv"
    _run([str(script), "pack", str(sample), "--packs", "4", "--preset", "eplb", "--out", str(out)],
         cwd=installed["outside"], env=_clean_env())
    assert out.read_text().startswith("layer,item,pack,rank_in_pack,load")
    assert len(out.read_text().splitlines()) == 1 + 24


def test_the_installed_library_packs_places_and_loads_samples_without_streamlit(installed):
    done = _run([str(installed["python"]), "-c", PROBE], cwd=installed["outside"], env=_clean_env())
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(seen["packviz_file"]).is_relative_to(installed["site"]), seen["packviz_file"]
    assert seen["app_modules"] == []
    loads = seen["pack_loads"]
    assert sorted(loads[1]) == [2.0, 2.0, 2.0, 2.0]
    assert sum(loads[0]) == 38.0 and max(loads[0]) == 10.0  # 38 over 4 packs of 2: 10 is the best a pack can be
    assert seen["phy2log"] == README_PHY2LOG
    assert seen["logcnt"] == README_LOGCNT
    assert [58, 288] in seen["sample_shapes"] and [2, 12] in seen["sample_shapes"]


def test_requirements_files_install_what_the_package_declares():
    """`make run` installs from requirements.txt: it must hold every dependency
    pyproject.toml declares, the app's included, so both ways give a working app."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["app"]

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()

    listed = {name(line) for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith(("#", "-"))}
    assert {name(requirement) for requirement in declared} <= listed

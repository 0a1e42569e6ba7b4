"""The wheel as users install it (pip install ., pipx install .): not the editable source tree.

The wheel is built from a copy of the package (no stale build folder can fill in for missing
package data), installed without `-e` into a fresh virtual environment that borrows torch and
the other dependencies from this one, and driven from a folder outside the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vqclip"


def _runtime_files() -> set[str]:
    """Every file the package may read at run time: all that is not Python source or bytecode."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".py", ".pyc")
    }


def _build_wheel(dest: Path) -> Path:
    source = dest / "source"
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source)
    shutil.copy2(ROOT / "README.md", source)
    shutil.copytree(PACKAGE, source / "vqclip", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(dest), str(source)], check=True, capture_output=True)
    return next(dest.glob("vqclip-*.whl"))


def _venv_with_wheel(wheel: Path, venv: Path) -> Path:
    """A new environment holding only the wheel; torch and friends come from this environment."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # Appended after the new environment's own site-packages, so its vqclip (the wheel's) wins.
    (Path(site) / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-index", "--quiet", str(wheel)], check=True, capture_output=True)
    return venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory):
    """(wheel, bin folder of the environment it is installed in, a working folder outside the tree)."""
    base = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(base)
    bin_dir = _venv_with_wheel(wheel, base / "venv")
    work = base / "elsewhere"
    work.mkdir()
    return wheel, bin_dir, work


def _run(installed, *args: str) -> subprocess.CompletedProcess:
    _, bin_dir, work = installed
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", HF_HUB_OFFLINE="1",
               VQCLIP_HOME=str(work / "home"))
    return subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_holds_every_runtime_file(installed):
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = sorted(_runtime_files() - names)
    assert not missing, f"package files missing from the wheel: {missing}"


def test_installed_package_is_the_wheel(installed):
    _, bin_dir, _ = installed
    result = _run(installed, "python", "-c", "import vqclip; print(vqclip.__file__, vqclip.__version__)")
    assert result.returncode == 0, result.stderr
    location = Path(result.stdout.split()[0])
    assert bin_dir.parent in location.parents and ROOT not in location.parents


def test_installed_wheel_generates_with_the_shapes_preset_and_shows_a_gallery(installed):
    _, _, work = installed
    result = _run(installed, "vqclip", "generate", "a red circle", "--preset", "shapes", "--steps", "2",
                  "--json", "-o", "runs")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    image = work / record["image"]
    assert image.is_file() and Image.open(image).size == tuple(record["size"])
    gallery = _run(installed, "vqclip", "gallery", "runs")  # its style and script ship in the wheel
    assert gallery.returncode == 0, gallery.stderr
    assert "sort.addEventListener" in (work / "runs" / "index.html").read_text()


def test_installed_wheel_lists_models(installed):
    result = _run(installed, "vqclip", "models", "list", "--json")
    assert result.returncode == 0, result.stderr
    names = {entry["name"] for entry in json.loads(result.stdout)}
    assert {"shapes_clip", "shapes_vqgan"} <= names


def test_installed_wheel_classifies(installed):
    _, _, work = installed
    Image.new("RGB", (64, 64), (230, 20, 20)).save(work / "red.png")
    result = _run(installed, "vqclip", "classify", "red.png", "-l", "red", "-l", "blue", "--preset", "shapes",
                  "--json")
    assert result.returncode == 0, result.stderr
    [image] = json.loads(result.stdout)["results"]
    assert image["labels"][0]["label"] == "red"

"""The project as a user installs it: a wheel built from this tree, installed into a fresh virtual environment
outside the repository, whose `dartboard` console command then runs (pyproject.toml, engine/cli/main.py).

The temporary environment does not reinstall torch (several GB): it sees this environment's site-packages through
a .pth file, installs only the dartboard wheel (--no-deps) and runs from a folder outside the repository, so the
code that runs is the installed copy (the test checks where `engine` is imported from).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("engine", "app", "assets")  # the top-level folders the wheel carries


def _source_files() -> list[str]:
    out = []
    for top in SHIPPED:
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                out.append(path.relative_to(ROOT).as_posix())
    return sorted(out)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this tree, built from a copy (a build writes build/ and *.egg-info beside the sources)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for top in SHIPPED:
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    # --no-build-isolation: the setuptools of this environment (requirements-dev.txt pins it), no download
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index", "-q",
                    "-w", str(base / "dist"), str(src)], check=True, capture_output=True, text=True, timeout=300)
    (built,) = (base / "dist").glob("dartboard-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("venv")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies (torch, streamlit, ...) come from this environment: a path line in a .pth file
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "_dartboard_test_deps.pth").write_text("\n".join(ours) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    outside = base / "elsewhere"
    outside.mkdir()
    bin_dir = python.parent
    return {"python": python, "dartboard": bin_dir / ("dartboard.exe" if os.name == "nt" else "dartboard"),
            "cwd": outside, "purelib": Path(purelib)}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def _run(installed, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed["dartboard"]), *args], cwd=installed["cwd"], env=_env(**extra),
                          capture_output=True, text=True, timeout=300)


def test_the_wheel_carries_every_file_of_engine_app_and_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in _source_files() if f not in names]
    assert not missing, f"not in the wheel: {missing[:10]}"
    assert not any(n.startswith("tests/") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "dartboard = engine.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_command_runs_outside_the_repository(installed, tmp_path):
    code = "import engine, app; print(engine.__file__, app.__file__)"
    where = subprocess.run([str(installed["python"]), "-c", code],
                           cwd=installed["cwd"], env=_env(), capture_output=True, text=True, check=True).stdout
    assert all(Path(p).is_relative_to(installed["purelib"]) for p in where.split()), where

    from engine.version import __version__

    version = _run(installed, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"dartboard {__version__}"  # no clone: no commit
    module = subprocess.run([str(installed["python"]), "-m", "engine", "--version"], cwd=installed["cwd"],
                            env=_env(), capture_output=True, text=True)
    assert module.stdout.strip() == version.stdout.strip()

    inspect = _run(installed, "inspect", "DARTS_V2")  # reads assets/genotypes/known.json from the installation
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["parameters"] == 3_349_342

    runs = tmp_path / "runs"
    search = _run(installed, "search", "--preset", "smoke", "--set", "epochs=1", "--runs-dir", str(runs), "-q",
                  OMP_NUM_THREADS="1")
    assert search.returncode == 0, search.stderr
    assert search.stdout.startswith("Genotype(")
    (run,) = runs.iterdir()
    listed = json.loads(_run(installed, "runs", "--json", "--runs-dir", str(runs)).stdout)
    assert [(r["run_id"], r["state"]) for r in listed] == [(run.name, "finished")]

    bad = _run(installed, "search", "--preset", "smoke", "--set", "epochs=0")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "epochs=0" in bad.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (ROOT / "app" / "__main__.py").is_file(),
                    reason="app/__main__.py (`python -m app`, which `dartboard ui` calls) is missing")
def test_the_installed_ui_command_starts_the_dashboard(installed, tmp_path):
    port = _free_port()
    proc = subprocess.Popen([str(installed["dartboard"]), "ui", "--server.headless", "true", "--server.port",
                             str(port), "--browser.gatherUsageStats", "false"], cwd=installed["cwd"],
                            env=_env(DARTBOARD_RUNS=str(tmp_path / "runs")), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        end, body = time.monotonic() + 90, b""
        while time.monotonic() < end and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        assert body.strip() == b"ok", proc.stdout.read() if proc.poll() is not None else "no answer"
    finally:
        proc.terminate()
        proc.wait(30)
    # SIGTERM to `dartboard ui` stops the dashboard's server itself: nothing is left holding the port
    end = time.monotonic() + 30
    while time.monotonic() < end and _answers(port):
        time.sleep(0.5)
    assert not _answers(port), "the dashboard's server outlived `dartboard ui`"


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
        return True
    except OSError:
        return False


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_the_extras_pin_what_requirements_dev_pins():
    """pyproject's extras and requirements-dev.txt name the same versions (the README installs from the file)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = _pins([r for group in project["optional-dependencies"].values() for r in group])
    dev = _pins((ROOT / "requirements-dev.txt").read_text().splitlines())
    assert extras and {k: dev.get(k) for k in extras} == extras


def test_constraints_pin_every_requirement_at_the_same_version():
    """constraints.txt (Docker, CI) pins the whole tree; it agrees with the requirement files' own pins."""
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    for name in ("requirements.txt", "requirements-dev.txt"):
        pins = _pins((ROOT / name).read_text().splitlines())
        assert {k: constraints.get(k) for k in pins} == pins, name

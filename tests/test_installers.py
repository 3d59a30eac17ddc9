"""The bundle tooling: licence notices, the one-program entry point, the AppImage layout.

The PyInstaller build itself takes many minutes and several GB, more than CI's budget: it runs
when VAURA_TEST_BUNDLE=1 (and always through `make bundle`, which runs the bundle's self-test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from installers import licenses
from installers.build_bundle import add_cli_command

ROOT = Path(__file__).resolve().parents[1]


def test_notices_cover_the_runtime_dependencies_with_texts() -> None:
    notices = {n.name.lower(): n for n in licenses.collect()}
    for name in ["vaura-studio", "torch", "torchaudio", "descript-audio-codec", "av", "numpy", "pyside6"]:
        assert name in notices, f"{name} missing from the dependency closure"
    for dev_only in ["pytest", "ruff", "pyinstaller", "hypothesis"]:
        assert dev_only not in notices, f"{dev_only} is a development tool, not shipped"
    assert notices["torch"].texts and "BSD" in notices["torch"].licence + notices["torch"].texts[0][1]
    assert notices["av"].complete and notices["numpy"].complete
    if (licenses.COMMON_LICENCES_DIR / "LGPL-3").is_file():  # Qt's wheels carry no licence file
        names = [fname for fname, _ in notices["pyside6"].texts]
        assert names[:2] == ["LGPL-3", "GPL-3"]


def test_notices_file_is_written_atomically_with_every_entry(tmp_path: Path) -> None:
    out = tmp_path / "THIRD_PARTY_LICENSES.txt"
    notices = licenses.write_notices(out)
    text = out.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("*.tmp"))
    assert notices[-1].name == "Python"
    for n in notices:
        assert f"\n{n.name} {n.version}\nLicence: " in text


def test_licence_names_map_to_common_texts(tmp_path: Path) -> None:
    for name in ["LGPL-3", "GPL-3", "Apache-2.0", "MPL-2.0"]:
        (tmp_path / name).write_text(f"text of {name}")
    assert [f for f, _ in licenses._common_texts("LGPL-3.0-only OR GPL-3.0-only", tmp_path)] == [
        "LGPL-3",
        "GPL-3",
    ]
    assert [f for f, _ in licenses._common_texts("Apache Software License", tmp_path)] == []
    assert [f for f, _ in licenses._common_texts("Apache 2.0", tmp_path)] == ["Apache-2.0"]
    assert [f for f, _ in licenses._common_texts("MPL-2.0", tmp_path)] == ["MPL-2.0"]
    assert licenses._common_texts("MIT", tmp_path) == []


@pytest.mark.parametrize(
    ("program", "usage"), [("vaura", "usage: vaura "), ("vaura-studio", "usage: vaura-studio")]
)
def test_one_program_answers_to_both_names(program: str, usage: str) -> None:
    code = f"import sys; sys.argv[0] = {program!r}; from installers.entry import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(usage)


def _fake_bundle(folder: Path) -> Path:
    """An application folder whose program prints the name it was started as and its arguments."""
    folder.mkdir(parents=True)
    exe = folder / "vaura-studio"
    exe.write_text('#!/bin/sh\necho "$(basename "$0") $*"\n')
    exe.chmod(0o755)
    add_cli_command(folder)
    return folder


@pytest.mark.skipif(sys.platform == "win32", reason="AppImage is Linux only")
def test_appimage_appdir_starts_the_app_and_the_cli(tmp_path: Path) -> None:
    bundle = _fake_bundle(tmp_path / "vaura-studio")
    script = ROOT / "installers" / "linux" / "build_appimage.sh"
    done = subprocess.run(
        [str(script), "--appdir-only", str(bundle), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    appdir = tmp_path / "VAURA_Studio.AppDir"
    desktop = (appdir / "vaura-studio.desktop").read_text()
    assert "Exec=vaura-studio %f" in desktop
    assert "Icon=vaura-studio" in desktop
    assert (appdir / "vaura-studio.png").read_bytes()[:4] == b"\x89PNG"
    assert (appdir / ".DirIcon").resolve() == (appdir / "vaura-studio.png").resolve()

    run = subprocess.run([str(appdir / "AppRun"), "--self-test"], capture_output=True, text=True, timeout=30)
    assert run.stdout.strip() == "vaura-studio --self-test"
    env = {**os.environ, "ARGV0": "/home/me/bin/vaura"}  # what the AppImage runtime passes
    run = subprocess.run([str(appdir / "AppRun"), "models", "list"], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "vaura models list"


def test_appimage_script_names_a_missing_bundle(tmp_path: Path) -> None:
    script = ROOT / "installers" / "linux" / "build_appimage.sh"
    done = subprocess.run(
        [str(script), str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert "nowhere" in done.stderr and "make bundle" in done.stderr


def test_windows_installer_ships_the_bundle_and_licences() -> None:
    iss = (ROOT / "installers" / "windows" / "vaura-studio.iss").read_text()
    assert 'Source: "{#BundleDir}\\*"' in iss and "recursesubdirs" in iss
    assert "LicenseFile=..\\..\\LICENSE" in iss
    assert (ROOT / "LICENSE").is_file()
    assert (ROOT / "resources" / "icons" / "vaura-studio.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("VAURA_TEST_BUNDLE") != "1", reason="set VAURA_TEST_BUNDLE=1 (many minutes)"
)
@pytest.mark.skipif(shutil.which("ldd") is None and sys.platform == "linux", reason="PyInstaller needs ldd")
def test_bundle_builds_and_passes_its_self_test(tmp_path: Path) -> None:
    from installers.build_bundle import build

    info = build(tmp_path / "dist", tmp_path / "work", check=True)
    folder = tmp_path / "dist" / "vaura-studio"
    assert (folder / "THIRD_PARTY_LICENSES.txt").stat().st_size > 100_000
    assert (folder / "_internal" / "resources" / "models" / "vaura-tiny" / "model.safetensors").is_file()
    assert info["size_bytes"] > 0

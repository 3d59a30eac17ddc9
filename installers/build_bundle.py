"""Build the self-contained VAURA Studio application folder with PyInstaller.

    python installers/build_bundle.py [--dist DIR] [--work DIR] [--check]

Produces DIR/vaura-studio/ (default dist/) holding the `vaura-studio` program, the `vaura` command
(the same program under another name, see installers/entry.py), the embedded vaura-tiny model and
demo clip, our licence and THIRD_PARTY_LICENSES.txt, and BUILD-INFO.json (what went in, how big).
On macOS PyInstaller also wraps it as `VAURA Studio.app`. `--check` then runs the bundle's own
`--self-test` offscreen with a throw-away home folder, so nothing of the builder's settings leaks in.
The platform wrappers (AppImage, Inno Setup, dmg) in installers/<platform>/ start from this folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `installers` importable
    sys.path.insert(0, str(ROOT))

from installers.licenses import write_notices  # noqa: E402

NAME = "vaura-studio"
SPEC = ROOT / "installers" / "vaura-studio.spec"
EXE_SUFFIX = ".exe" if sys.platform == "win32" else ""


class BuildError(Exception):
    """A build step failed; the message says which and why."""


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def torch_build() -> dict[str, str | None]:
    """Which torch goes into the bundle: its version and CUDA runtime (None for a CPU build)."""
    import torch

    return {"torch": torch.__version__, "cuda": torch.version.cuda}


def run_pyinstaller(dist: Path, work: Path) -> Path:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        raise BuildError(
            "PyInstaller is not installed: pip install -e '.[bundle]' (or `make bundle`)"
        ) from None
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN"]
    cmd += ["--distpath", str(dist), "--workpath", str(work), str(SPEC)]
    print("running:", " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        raise BuildError("PyInstaller failed; its messages are above")
    folder = dist / NAME
    if not (folder / (NAME + EXE_SUFFIX)).is_file():
        raise BuildError(f"PyInstaller finished but {folder / (NAME + EXE_SUFFIX)} is missing")
    return folder


def add_cli_command(folder: Path) -> Path:
    """`vaura` next to `vaura-studio`: a relative symlink, or a copy where links are unusual (Windows)."""
    target = folder / ("vaura" + EXE_SUFFIX)
    target.unlink(missing_ok=True)
    if sys.platform == "win32":
        shutil.copy2(folder / (NAME + EXE_SUFFIX), target)
    else:
        target.symlink_to(NAME)
    return target


def add_documents(folder: Path) -> list[str]:
    """Our licence, README and the third-party notices; returns distributions lacking licence text."""
    shutil.copy2(ROOT / "LICENSE", folder / "LICENSE.txt")
    shutil.copy2(ROOT / "installers" / "BUNDLE-README.txt", folder / "README.txt")
    notices = write_notices(folder / "THIRD_PARTY_LICENSES.txt")
    return [f"{n.name} {n.version} ({n.licence})" for n in notices if not n.complete]


def write_build_info(folder: Path, seconds: float, incomplete: list[str]) -> dict:
    from vaura_core import __version__

    info = {
        "app": NAME,
        "version": __version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        **torch_build(),
        "build_seconds": round(seconds, 1),
        "size_bytes": folder_size(folder),
        "licence_text_missing": incomplete,
    }
    (folder / "BUILD-INFO.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def self_test(folder: Path, timeout: float = 900) -> None:
    """Run the bundle's `--self-test` offscreen, isolated from the builder's settings and models."""
    folder = folder.resolve()
    with tempfile.TemporaryDirectory(prefix="vaura-bundle-check-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAURA_", "PYTHON", "XDG_"))}
        env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/config", XDG_DATA_HOME=f"{home}/data")
        env.update(QT_QPA_PLATFORM="offscreen", VAURA_OFFLINE="1")
        for args in (["vaura" + EXE_SUFFIX, "models", "list"], [NAME + EXE_SUFFIX, "--self-test"]):
            print("checking:", " ".join(args), flush=True)
            try:
                done = subprocess.run(
                    [str(folder / args[0]), *args[1:]], env=env, cwd=home, timeout=timeout, check=False
                )
            except subprocess.TimeoutExpired:
                raise BuildError(f"{' '.join(args)} did not finish within {timeout:.0f} s") from None
            if done.returncode != 0:
                raise BuildError(f"{' '.join(args)} from the bundle failed with exit code {done.returncode}")


def build(dist: Path, work: Path, check: bool) -> dict:
    start = time.monotonic()
    folder = run_pyinstaller(dist, work)
    add_cli_command(folder)
    incomplete = add_documents(folder)
    info = write_build_info(folder, time.monotonic() - start, incomplete)
    print(
        f"bundle: {folder} ({info['size_bytes'] / 2**30:.2f} GiB, torch {info['torch']}, "
        f"{'CUDA ' + info['cuda'] if info['cuda'] else 'CPU only'}, built in {info['build_seconds']} s)"
    )
    if incomplete:
        print("no licence text found for: " + "; ".join(incomplete))
    if check:
        self_test(folder)
        print("bundle self-test passed")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist)")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work folder"
    )
    parser.add_argument("--check", action="store_true", help="run the bundle's --self-test afterwards")
    args = parser.parse_args(argv)
    try:
        build(args.dist.resolve(), args.work.resolve(), args.check)
    except BuildError as err:
        print(f"bundle build failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

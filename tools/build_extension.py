# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the extension zip the way Blender's own builder does, then check it.

    python tools/build_extension.py                  # dist/dataset_forge-<version>.zip, this platform
    python tools/build_extension.py --all-platforms  # dist/dataset_forge-<version>-<platform>.zip each

Steps:

1. Find Blender's extension CLI inside the installed ``bpy`` wheel
   (``bpy/<ver>/scripts/addons_core/bl_pkg/cli/blender_ext.py``, stdlib only: it runs without
   starting Blender; ``blender --command extension build`` runs the same code).
2. Download the wheels that ``blender_manifest.toml`` lists (OpenEXR and Pillow, used by the dataset
   tools inside Blender; never numpy, which Blender ships) into ``wheels/`` with
   ``pip download --only-binary=:all: --no-deps --python-version 3.11 --platform TAG``, taking the
   project, version and platform tag from each listed file name.
3. Stage the source tree (without .git, venvs, datasets, dist, caches) with a manifest reduced to
   the platforms being built, and run ``blender_ext.py build`` on it (``--split-platforms`` for more
   than one platform). The manifest's ``[build] paths_exclude_pattern`` decides what ships.
4. Check each zip: ``blender_ext.py validate``, then the layout (manifest and ``__init__.py`` at the
   top, the platform's wheels present, no tests/tools/bench/docs/caches, no numpy).

Prints the path of each zip built, one a line, last. Exit code 0 on success, 1 with a one-line
error otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform as _platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = "blender_manifest.toml"
WHEELS_DIR = "wheels"
# Never copied into the staging tree (large or machine-specific); the manifest's own exclude
# patterns then filter the rest exactly as for a plain `blender_ext.py build` of the checkout.
STAGE_SKIP = {".git", "datasets", "dist", "build", WHEELS_DIR, "__pycache__", ".pytest_cache",
              ".ruff_cache", ".scenes", "tmp", ".hypothesis"}
FORBIDDEN_PREFIXES = ("tests/", "tools/", "bench/", "docs/", ".ci/", ".git/", "datasets/", "dist/")
PYTHON_VERSION = "3.11"


class BuildError(Exception):
    """Reported as one line; exit code 1."""


def find_builder(explicit: str | None = None) -> Path:
    """Path of ``blender_ext.py`` inside the installed ``bpy`` wheel."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise BuildError(f"--builder {explicit} does not exist")
        return p
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.origin:
        raise BuildError(f"this Python ({sys.executable}) has no bpy wheel; run tools/setup.sh or "
                         "pass --builder PATH/TO/blender_ext.py")
    hits = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        raise BuildError(f"no bl_pkg/cli/blender_ext.py under {Path(spec.origin).parent}")
    return hits[-1]


def load_builder(path: Path):
    """Import Blender's CLI as a module to reuse its wheel-platform rules."""
    spec = importlib.util.spec_from_file_location("_blender_ext_cli", str(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def host_platform() -> str:
    """This machine as a Blender platform name (``linux-x64``, ``macos-arm64``, ...)."""
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    machine = _platform.machine().lower()
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


def wheel_platforms(builder, wheel: str) -> set[str]:
    """Blender platforms a wheel file serves, by Blender's own rules."""
    tag = Path(wheel).name[:-len(".whl")].split("-")[-1]
    if tag == "any":
        return {"*"}
    out: set[str] = set()
    for part in tag.split("."):
        out.update(builder.blender_platforms_from_wheel_platform(part))
    return out


def download_wheel(wheel: str, dest: Path, python: str = sys.executable) -> Path:
    """Fetch one listed wheel (exact file name) with pip into ``dest``."""
    target = dest / Path(wheel).name
    if target.is_file():
        return target
    parts = Path(wheel).name[:-len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise BuildError(f"wheel file name {wheel!r} does not follow the wheel spec")
    dist, version, py_tag, abi_tag, plat = parts[0], parts[1], parts[-3], parts[-2], parts[-1]
    cmd = [python, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
           "--python-version", PYTHON_VERSION, "--implementation", py_tag[:2],
           "--abi", abi_tag, "-d", str(dest), "--disable-pip-version-check", "-q"]
    for p in plat.split("."):
        cmd += ["--platform", p]
    cmd.append(f"{dist}=={version}")
    dest.mkdir(parents=True, exist_ok=True)
    # Download beside the cache and move into place: a concurrent build never sees half a file.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=dest) as tmp:
        cmd[cmd.index("-d") + 1] = tmp
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / target.name
        if proc.returncode != 0 or not got.is_file():
            found = sorted(x.name for x in Path(tmp).glob("*.whl"))
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise BuildError(f"pip could not fetch {target.name} (found {found or 'nothing'}): {tail}")
        os.replace(got, target)
    return target


def _toml_list(values: list[str]) -> str:
    return "[\n" + "".join(f'  "{v}",\n' for v in values) + "]"


def staged_manifest(text: str, platforms: list[str], wheels: list[str]) -> str:
    """The manifest text with ``platforms`` and ``wheels`` replaced (both keys must exist)."""
    for key, values in (("platforms", platforms), ("wheels", wheels)):
        pattern = re.compile(rf"^{key}\s*=\s*\[.*?\]", re.S | re.M)
        if not pattern.search(text):
            raise BuildError(f"{MANIFEST} has no top-level {key} = [...] list")
        text = pattern.sub(lambda _m, k=key, v=values: f"{k} = {_toml_list(v)}", text, count=1)
    return text


def stage(source: Path, dest: Path) -> None:
    """Copy the source tree without the bulky or machine-specific folders."""
    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder).resolve() == source.resolve()
        skip = {n for n in names if n in STAGE_SKIP or n.endswith(".pyc")}
        if top:
            skip |= {n for n in names if n.startswith(".venv") or n.endswith(".zip")}
        return skip

    shutil.copytree(source, dest, ignore=ignore, symlinks=True, dirs_exist_ok=True)


def run_builder(builder_path: Path, args: list[str]) -> str:
    proc = subprocess.run([sys.executable, str(builder_path), *args], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    failed = any(line.startswith(("FATAL_ERROR", "ERROR", "Error")) for line in out.splitlines())
    if proc.returncode != 0 or failed:
        raise BuildError(f"blender_ext.py {args[0]} failed: " + " | ".join(out.strip().splitlines()[-3:]))
    return out


def check_zip(path: Path, manifest: dict, platform: str, wheels: list[str]) -> None:
    """The zip's layout is what Blender installs; raises BuildError naming the problem."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        bad = zf.testzip()
        if bad:
            raise BuildError(f"{path.name}: corrupt member {bad}")
        inner = tomllib.loads(zf.read(MANIFEST).decode("utf-8"))
    for required in (MANIFEST, "__init__.py", "settings.py"):
        if required not in names:
            raise BuildError(f"{path.name}: {required} is missing at the top level")
    leaked = sorted({n.split("/")[0] + "/" for n in names if n.startswith(FORBIDDEN_PREFIXES)})
    if leaked or any(n.endswith(".pyc") for n in names):
        raise BuildError(f"{path.name}: development files leaked into the zip: {leaked or '*.pyc'}")
    for w in wheels:
        if w.removeprefix("./") not in names:
            raise BuildError(f"{path.name}: wheel {w} is missing")
    if any("numpy" in n.lower() for n in names if n.endswith(".whl")):
        raise BuildError(f"{path.name}: bundles numpy, which Blender already ships")
    if inner["id"] != manifest["id"] or inner["version"] != manifest["version"]:
        raise BuildError(f"{path.name}: manifest id/version differ from the source")
    gen = inner.get("build", {}).get("generated", {})
    got = gen.get("platforms") or inner.get("platforms")
    if got != [platform]:
        raise BuildError(f"{path.name}: built for {got}, expected [{platform!r}]")


def build(platforms: list[str] | None = None, output_dir: Path | None = None,
          builder: str | None = None, source: Path = REPO) -> list[Path]:
    """Build one zip per platform (or one plain zip for a single platform); returns the paths."""
    builder_path = find_builder(builder)
    cli = load_builder(builder_path)
    text = (source / MANIFEST).read_text(encoding="utf-8")
    manifest = tomllib.loads(text)
    listed_platforms: list[str] = manifest.get("platforms", [])
    listed_wheels: list[str] = manifest.get("wheels", [])
    if any("numpy" in Path(w).name.lower() for w in listed_wheels):
        raise BuildError(f"{MANIFEST} lists a numpy wheel: Blender ships numpy, remove it")
    wanted = list(platforms or [host_platform()])
    unknown = [p for p in wanted if p not in listed_platforms]
    if unknown:
        raise BuildError(f"platform(s) {', '.join(unknown)} not in {MANIFEST} platforms "
                         f"({', '.join(listed_platforms)})")
    out_dir = Path(output_dir or source / "dist").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    per_platform = {p: [w for w in listed_wheels if {"*", p} & wheel_platforms(cli, w)]
                    for p in wanted}
    for p, ws in per_platform.items():
        dists = {Path(w).name.split("-")[0].lower() for w in ws}
        missing = {d for d in (Path(w).name.split("-")[0].lower() for w in listed_wheels)} - dists
        if missing:
            raise BuildError(f"{MANIFEST} lists no {p} wheel for {', '.join(sorted(missing))}")
    needed = sorted({w for ws in per_platform.values() for w in ws})
    cache = source / WHEELS_DIR
    for w in needed:
        download_wheel(w, cache)

    split = len(wanted) > 1
    name = f"{manifest['id']}-{manifest['version']}"
    expected = ([out_dir / f"{name}-{p.replace('-', '_')}.zip" for p in wanted] if split
                else [out_dir / f"{name}.zip"])
    with tempfile.TemporaryDirectory(prefix="df-build-") as tmp:
        src = Path(tmp) / "src"
        stage(source, src)
        (src / WHEELS_DIR).mkdir(exist_ok=True)
        for w in needed:
            shutil.copy2(cache / Path(w).name, src / WHEELS_DIR / Path(w).name)
        (src / MANIFEST).write_text(staged_manifest(text, wanted, needed), encoding="utf-8")
        for p in expected:
            p.unlink(missing_ok=True)
        args = ["build", "--source-dir", str(src), "--output-dir", str(out_dir)]
        run_builder(builder_path, args + (["--split-platforms"] if split else []))
    for p, zpath in zip(wanted, expected):
        if not zpath.is_file():
            raise BuildError(f"the builder did not write {zpath}")
        run_builder(builder_path, ["validate", str(zpath)])
        check_zip(zpath, manifest, p, per_platform[p])
    return expected


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/build_extension.py", description=__doc__.split("\n")[0])
    ap.add_argument("--all-platforms", action="store_true",
                    help="one zip per platform listed in blender_manifest.toml (downloads all wheels)")
    ap.add_argument("--platform", action="append", default=None,
                    help="build for this Blender platform (repeatable), e.g. windows-x64; default: "
                         f"this machine ({host_platform()})")
    ap.add_argument("--output-dir", default=None, help="where the zips go (default: dist/)")
    ap.add_argument("--builder", default=None, help="path to blender_ext.py (default: from bpy)")
    args = ap.parse_args(argv)
    try:
        platforms = args.platform
        if args.all_platforms:
            platforms = tomllib.loads((REPO / MANIFEST).read_text(encoding="utf-8"))["platforms"]
        paths = build(platforms, Path(args.output_dir) if args.output_dir else None, args.builder)
    except BuildError as exc:
        print(f"build_extension: error: {exc}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``otel-dd-lambda layer``: build a Lambda layer zip for one Python version and architecture.

The zip holds the package and its run-time dependencies (``[project] dependencies``, resolved
by pip as Linux wheels for the target: ``--platform manylinux2014_<arch> --implementation cp
--python-version X.Y --only-binary=:all:``) under ``python/``, which Lambda puts on ``sys.path``,
and the exec wrapper at ``/opt/otel-dd-lambda-wrapper`` (mode 0755). Nothing from the test stack.

Byte code: a layer is mounted read-only at ``/opt``, so a module without a usable ``.pyc`` is
compiled again in every cold start. When the target Python is the one running this command the
layer ships ``.pyc`` files in unchecked-hash mode: valid whatever the file times Lambda's
extraction leaves, and free of build times (so the zip is reproducible). Any other target gets
no ``.pyc`` (a compiler of another version would write unusable ones); build with that Python
to have them.

The zip is deterministic: sorted entries, fixed timestamps, normalised modes (0644, or 0755 for
executables; the execute bit is kept in each entry's Unix attributes).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from typing import Callable, List, NamedTuple, Optional, Sequence

HELP = "build a Lambda layer zip: the package and its run-time dependencies for one Python and architecture"

ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> manylinux's
WRAPPER = "otel-dd-lambda-wrapper"  # at the layer's root: /opt/otel-dd-lambda-wrapper
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no build time in the archive
LAYER_MOUNT = "/opt"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PYTHON_RE = re.compile(r"^3\.(\d{1,2})$")


class LayerError(Exception):
    """The layer could not be built (bad arguments, pip failed, the package lacks its wrapper)."""


class Layer(NamedTuple):
    path: str  # the zip
    version: str  # of otel-dd-lambda inside it
    python: str
    arch: str
    compiled: bool  # ships .pyc for ``python``
    files: int
    unzipped_bytes: int  # the files' sizes (``du -sb`` of the unzipped layer adds its directories)


def local_arch() -> str:
    """Lambda's name for this machine's architecture (x86_64 when it is neither)."""
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def running_python() -> str:
    return "%d.%d" % sys.version_info[:2]


def default_source() -> str:
    """This source tree when the command runs from one, else the released package of this version."""
    root = os.path.dirname(_PACKAGE_DIR)
    if os.path.isfile(os.path.join(root, "pyproject.toml")):
        return root
    from .._version import __version__

    return "otel-dd-lambda==" + __version__


def layer_name(version: str, python: str, arch: str) -> str:
    return "otel-dd-lambda-%s-py%s-%s.zip" % (version, python, arch)


def _pip(args: Sequence[str], quiet: bool) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check"] + (["-q"] if quiet else []) + list(args)
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise LayerError("pip failed (exit %d): %s\n%s" % (proc.returncode, " ".join(command), proc.stdout[-4000:]))


def _requirement(source: str, work: str, quiet: bool) -> str:
    """What to give ``pip install``: a wheel built from a source tree, or ``source`` as is."""
    if os.path.isdir(source):
        # setuptools builds in the tree it is given (build/lib): a copy keeps files left there
        # by an older build out of the wheel, and the user's tree clean
        tree = os.path.join(work, "source")
        shutil.copytree(source, tree, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
        wheels = os.path.join(work, "wheel")
        # our wheel is pure Python: built once here, installed for any target below
        _pip(["wheel", "--no-deps", "-w", wheels, tree], quiet)
        built = [name for name in os.listdir(wheels) if name.endswith(".whl")]
        if len(built) != 1:
            raise LayerError("expected one wheel from %s, got %r" % (source, built))
        return os.path.join(wheels, built[0])
    return source  # a wheel file or a requirement such as otel-dd-lambda==0.1.0


def _installed_version(site: str) -> str:
    for name in os.listdir(site):
        match = re.match(r"^otel_dd_lambda-(.+)\.dist-info$", name)
        if match:
            return match.group(1)
    raise LayerError("otel-dd-lambda is not in the layer (was the source another package?)")


def _remove_pycache(root: str) -> None:
    for directory, subdirs, _ in os.walk(root):
        if "__pycache__" in subdirs:
            shutil.rmtree(os.path.join(directory, "__pycache__"))
            subdirs.remove("__pycache__")


def _prune_records(site: str) -> None:
    """Drop install-source records and what we removed from each ``RECORD``.

    ``direct_url.json`` names the temporary wheel pip installed from (a build path, and the
    wheel's hash, which changes with its timestamps): meaningless in a layer, and it would make
    two builds of the same code differ.
    """
    for name in sorted(os.listdir(site)):
        if not name.endswith(".dist-info"):
            continue
        dist_info = os.path.join(site, name)
        direct_url = os.path.join(dist_info, "direct_url.json")
        if os.path.exists(direct_url):
            os.remove(direct_url)
        record = os.path.join(dist_info, "RECORD")
        if not os.path.isfile(record):
            continue
        with open(record, encoding="utf-8", newline="") as handle:
            lines = handle.read().splitlines()
        # RECORD is CSV: a path holding a comma is quoted; keep such lines as they are
        kept = [line for line in lines
                if line.startswith('"') or os.path.exists(os.path.join(site, line.split(",", 1)[0]))]
        if kept != lines:
            with open(record, "w", encoding="utf-8", newline="") as handle:
                handle.write("".join(line + "\n" for line in kept))


_COMPILE = """
import compileall, py_compile, sys
ok = compileall.compile_dir(sys.argv[1], ddir=sys.argv[2], quiet=2, workers=1,
                            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
sys.exit(0 if ok else 3)
"""


def _compile(site: str) -> bool:
    """``.pyc`` for the running Python, named for the paths Lambda imports them from.

    Unchecked-hash: a read-only, immutable layer, so the source is never compared with the
    ``.pyc``. A fresh isolated interpreter compiles: marshal's output depends on which objects
    the compiling process already shares (interned strings), so the same files compiled in a
    process that imported them (a test run, say) would differ byte for byte.
    """
    proc = subprocess.run([sys.executable, "-I", "-c", _COMPILE, site, LAYER_MOUNT + "/python"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode not in (0, 3):
        raise LayerError("byte-compiling failed:\n%s" % proc.stdout[-4000:])
    return proc.returncode == 0


def _mode(path: str) -> int:
    return 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644


def write_zip(stage: str, target: str) -> int:
    """Zip ``stage`` into ``target`` reproducibly; returns the number of files."""
    paths: List[str] = []
    for directory, subdirs, files in os.walk(stage):
        subdirs.sort()
        paths.extend(os.path.join(directory, name) for name in files)
    entries = sorted((os.path.relpath(p, stage).replace(os.sep, "/"), p) for p in paths)
    partial = target + ".partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in entries:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.create_system = 3  # Unix: unzip, and Lambda, apply the mode below
            info.external_attr = (stat.S_IFREG | _mode(path)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as handle:
                archive.writestr(info, handle.read(), compresslevel=9)
    os.replace(partial, target)
    return len(entries)


def build_layer(python: str, arch: str, out_dir: str, source: Optional[str] = None,
                constraints: Sequence[str] = (), quiet: bool = True,
                log: Callable[[str], None] = lambda message: None) -> Layer:
    """Build ``out_dir/otel-dd-lambda-<version>-py<python>-<arch>.zip``."""
    if not _PYTHON_RE.match(python):
        raise LayerError("--python must look like 3.11, got %r" % python)
    if arch not in ARCHITECTURES:
        raise LayerError("--arch must be one of %s, got %r" % (", ".join(ARCHITECTURES), arch))
    with tempfile.TemporaryDirectory(prefix="otel-dd-lambda-layer-") as work:
        stage = os.path.join(work, "layer")
        site = os.path.join(stage, "python")
        requirement = _requirement(source or default_source(), work, quiet)
        log("installing %s for CPython %s on manylinux2014_%s" % (os.path.basename(requirement), python,
                                                                    ARCHITECTURES[arch]))
        args = ["install", "--target", site, "--no-compile", "--no-warn-script-location",
                "--platform", "manylinux2014_" + ARCHITECTURES[arch], "--implementation", "cp",
                "--python-version", python, "--only-binary=:all:"]
        for constraint in constraints:
            args += ["-c", constraint]
        _pip(args + [requirement], quiet)
        # console scripts carry this machine's interpreter in their #! line: useless in Lambda
        shutil.rmtree(os.path.join(site, "bin"), ignore_errors=True)
        _remove_pycache(site)  # wheels may ship some, for whichever Python built them
        _prune_records(site)
        version = _installed_version(site)
        wrapper = os.path.join(site, "otel_dd_lambda", "exec_wrapper", WRAPPER)
        if not os.path.isfile(wrapper):
            raise LayerError("the installed package has no %s" % WRAPPER)
        shutil.copyfile(wrapper, os.path.join(stage, WRAPPER))
        for path in (wrapper, os.path.join(stage, WRAPPER)):
            os.chmod(path, 0o755)  # Lambda execs it
        compiled = python == running_python() and sys.implementation.name == "cpython"
        if compiled:
            if not _compile(site):
                log("warning: some modules did not compile; they are shipped as source only")
        else:
            log("not byte-compiled: the target is Python %s and this is Python %s "
                "(run the command with python%s for .pyc in the layer)" % (python, running_python(), python))
        unzipped = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(stage) for f in fs)
        os.makedirs(out_dir, exist_ok=True)
        target = os.path.join(out_dir, layer_name(version, python, arch))
        files = write_zip(stage, target)
    return Layer(target, version, python, arch, compiled, files, unzipped)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Lambda mounts the layer at /opt: python/ is on sys.path and the exec wrapper is "
        "/opt/%s (set AWS_LAMBDA_EXEC_WRAPPER to it). Needs pip and access to a package index. "
        "Example: otel-dd-lambda layer --python 3.11 --arch arm64 --out dist/" % WRAPPER)
    parser.add_argument("--python", default=running_python(), metavar="X.Y",
                        help="the Lambda runtime's Python version (default: this Python, %(default)s); "
                             ".pyc files are included only when it is this Python")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default=local_arch(),
                        help="the function's architecture (default: this machine's, %(default)s)")
    parser.add_argument("--out", default="dist", metavar="DIR", help="where to write the zip (default: %(default)s)")
    parser.add_argument("--source", metavar="DIR|WHEEL|REQ",
                        help="what to package: a source tree, a wheel or a requirement "
                             "(default: this source tree, else otel-dd-lambda==<this version> from the index)")
    parser.add_argument("-c", "--constraint", action="append", default=[], metavar="FILE",
                        help="pip constraints file for the dependencies' versions (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show pip's output")


def run(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        layer = build_layer(args.python, args.arch, args.out, args.source, args.constraint,
                            quiet=not args.verbose, log=log)
    except LayerError as error:
        print("error: %s" % error, file=sys.stderr)
        return 1
    print(layer.path)
    log("otel-dd-lambda %s, Python %s, %s: %d files, %d bytes unzipped, %d bytes zipped%s" % (
        layer.version, layer.python, layer.arch, layer.files, layer.unzipped_bytes,
        os.path.getsize(layer.path), ", byte-compiled" if layer.compiled else ""))
    return 0

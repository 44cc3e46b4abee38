"""Unzipped size of our Lambda layer against Datadog's and OpenTelemetry's Python layers.

    .venv/bin/python benchmarks/bench_layer_size.py [--python 3.11] [--arch x86_64]

Run by hand: it downloads wheels from PyPI (not part of ``make test``).

Each layer's contents are installed the same way, as Linux wheels for the target
(``pip install --target <dir>/python --no-compile --platform manylinux2014_<arch>
--implementation cp --python-version X.Y --only-binary=:all:``), and measured with ``du -sb``:

* ours: this source tree (its ``[project] dependencies``), versions from ``constraints.txt``;
* Datadog's (``datadog-lambda-python``'s layer): ``datadog-lambda`` and ``ddtrace``, at the
  versions of ``constraints.txt`` (the reference peers of the test suite);
* OpenTelemetry's (``opentelemetry-lambda``'s ``python/src/otel`` layer): the SDK, the OTLP/HTTP
  exporter, the distro, the X-Ray propagator and the instrumentations its
  ``otel_sdk/requirements.txt`` lists (with dependencies), plus ``opentelemetry-instrumentation-
  aws-lambda`` and ``-botocore`` without dependencies as its ``nodeps-requirements.txt`` has them.

A second column removes what each project's own layer build deletes afterwards (both drop
``boto*``/``urllib3*``, which the Lambda runtime provides; Datadog's also drops ``requests`` and
its dependencies, ``setuptools``, some ddtrace subpackages, and replaces ``.py`` files by
``-OO`` ``.pyc``, which is not reproduced here). The last row is our actual layer: the zip of
``otel-dd-lambda layer``, unzipped, with its ``.pyc`` files when the target is this Python.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from otel_dd_lambda.commands.layer import ARCHITECTURES, build_layer, local_arch, running_python  # noqa: E402

# opentelemetry-lambda, python/src/otel/otel_sdk/ at commit c72580eb31f5 (2026-08-22)
OTEL_SDK = "1.44.0"
OTEL_CONTRIB = "0.65b0"
OTEL_REQUIREMENTS = [
    "opentelemetry-sdk==" + OTEL_SDK,
    "opentelemetry-exporter-otlp-proto-http==" + OTEL_SDK,
    "opentelemetry-distro==" + OTEL_CONTRIB,
    "opentelemetry-instrumentation==" + OTEL_CONTRIB,
    "opentelemetry-semantic-conventions==" + OTEL_CONTRIB,
    "opentelemetry-propagator-aws-xray==1.0.2",
    "opentelemetry-util-http==" + OTEL_CONTRIB,
] + ["opentelemetry-instrumentation-%s==%s" % (name, OTEL_CONTRIB) for name in (
    "aiohttp-client", "asgi", "asyncpg", "boto3sqs", "celery", "dbapi", "django", "fastapi", "falcon",
    "flask", "grpc", "jinja2", "mysql", "psycopg2", "pymemcache", "pymongo", "pymysql", "pyramid",
    "redis", "requests", "sqlalchemy", "sqlite3", "starlette", "tornado", "wsgi")]
OTEL_NODEPS = ["opentelemetry-instrumentation-aws-lambda==" + OTEL_CONTRIB,
               "opentelemetry-instrumentation-botocore==" + OTEL_CONTRIB]
OTEL_PRUNE = ["boto*", "urllib3*"]
DATADOG_PRUNE = ["botocore*", "setuptools", "jsonschema/tests", "ddtrace/appsec/_iast",
                 "ddtrace/internal/test_visibility", "datadog/dogshell", "bin/dog*", "requests*", "urllib3*",
                 "certifi*", "idna*", "charset_normalizer*", "*__mypyc*.so"]


def pinned(name: str) -> str:
    """``name==<version in constraints.txt>``, or ``name`` when it is not pinned there."""
    with open(os.path.join(ROOT, "constraints.txt")) as handle:
        for line in handle:
            key, _, version = line.strip().partition("==")
            if key.lower().replace("_", "-") == name:
                return "%s==%s" % (name, version)
    return name


def pip_target(site: str, python: str, arch: str, requirements: Sequence[str], deps: bool = True,
               constraints: Optional[str] = None) -> None:
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", site,
               "--no-compile", "--no-warn-script-location", "--platform", "manylinux2014_" + ARCHITECTURES[arch],
               "--implementation", "cp", "--python-version", python, "--only-binary=:all:"]
    if not deps:
        command.append("--no-deps")
    if constraints:
        command += ["-c", constraints]
    proc = subprocess.run(command + list(requirements), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:  # pip's output only then: its notes about this venv's own packages are noise
        raise SystemExit("pip failed:\n" + proc.stdout[-4000:])


def du_sb(path: str) -> int:
    return int(subprocess.run(["du", "-sb", path], check=True, capture_output=True, text=True).stdout.split()[0])


def distributions(site: str) -> Dict[str, str]:
    found = {}
    for name in os.listdir(site):
        match = re.match(r"^(.+)-([^-]+)\.dist-info$", name)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def prune(site: str, patterns: Sequence[str]) -> None:
    for pattern in patterns:
        for path in glob.glob(os.path.join(site, pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def measure(work: str, label: str, python: str, arch: str, install: List[Tuple[Sequence[str], bool]],
            patterns: Sequence[str], constraints: Optional[str] = None) -> Tuple[str, int, int, Dict[str, str]]:
    site = os.path.join(work, label, "python")
    for index, (requirements, deps) in enumerate(install):
        # each set into a directory of its own, then merged: a second `pip --target` into the same
        # directory skips packages whose top directory exists (opentelemetry/), as OTel's build notes
        part = os.path.join(work, label, "part%d" % index)
        pip_target(part, python, arch, requirements, deps, constraints)
        shutil.copytree(part, site, symlinks=True, dirs_exist_ok=True)
    size = du_sb(site)
    dists = distributions(site)
    prune(site, patterns)
    return label, size, du_sb(site), dists


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=running_python(), help="target Python (default: %(default)s)")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default=local_arch())
    parser.add_argument("--verbose", action="store_true", help="list every distribution and version")
    args = parser.parse_args(argv)
    constraints = os.path.join(ROOT, "constraints.txt")
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as work:
        wheel_dir = os.path.join(work, "wheel")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                        "-w", wheel_dir, ROOT], check=True)
        (ours_wheel,) = glob.glob(os.path.join(wheel_dir, "*.whl"))
        rows = [
            measure(work, "otel-dd-lambda", args.python, args.arch, [([ours_wheel], True)], [], constraints),
            measure(work, "datadog", args.python, args.arch,
                    [([pinned("datadog-lambda"), pinned("ddtrace")], True)], DATADOG_PRUNE, constraints),
            measure(work, "opentelemetry-lambda", args.python, args.arch,
                    [(OTEL_REQUIREMENTS, True), (OTEL_NODEPS, False)], OTEL_PRUNE),
        ]
        layer = build_layer(args.python, args.arch, os.path.join(work, "dist"), ROOT, [constraints])
        unzipped = os.path.join(work, "unzipped")
        with zipfile.ZipFile(layer.path) as archive:
            archive.extractall(unzipped)
        layer_size, zip_size = du_sb(unzipped), os.path.getsize(layer.path)
    print("Python %s, %s; pip install --target <dir>/python --no-compile --platform manylinux2014_%s "
          "--only-binary=:all:; du -sb <dir>/python" % (args.python, args.arch, ARCHITECTURES[args.arch]))
    print("%-22s %6s %20s %20s  %s" % ("layer", "dists", "installed (du -sb)", "after their prune", "key versions"))
    keys = ("otel-dd-lambda", "opentelemetry-sdk", "datadog-lambda", "ddtrace", "opentelemetry-distro", "msgpack")
    for label, size, pruned, dists in rows:
        versions = ", ".join("%s %s" % (k, dists[k]) for k in keys if k in dists)
        print("%-22s %6d %9d (%4.1f MB) %9d (%4.1f MB)  %s" % (
            label, len(dists), size, size / 1e6, pruned, pruned / 1e6, versions))
        if args.verbose:
            print("    " + " ".join("%s==%s" % item for item in sorted(dists.items())))
    print("%-22s %6s %9d (%4.1f MB) %20s  %s (zip %d bytes%s)" % (
        "otel-dd-lambda zip", "", layer_size, layer_size / 1e6, "", os.path.basename(layer.path), zip_size,
        ", with .pyc" if layer.compiled else ", no .pyc"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

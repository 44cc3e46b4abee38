"""Cold start "as deployed": ours vs datadog_lambda's wrapper, each in a minimal venv of its own.

    .venv/bin/python benchmarks/bench_deployed.py [--runs 9] [--rounds 3] [--rss-samples 3]
                                                  [--importtime 25] [--rebuild]

Why not just the repo's test venv (``bench_wrapper.py``'s import row)? A Lambda deployment
package holds the function's run-time dependencies only, and some import costs grow with what
is installed: OTel's API reads the entry points of *every* installed distribution when
``opentelemetry.context`` is imported (``importlib_metadata.entry_points()``). The test venv
holds over 100 distributions (pytest, moto, ddapm-test-agent, ...) that no function ships, and
an editable install whose ``.pth`` finder imports stdlib modules into the bare interpreter. The
honest shape is one venv per side with exactly what ``pip`` installs for it:

* ``ours``: ``pip install -c constraints.txt <this repo>`` (a regular, non-editable install of a
  snapshot of the source: ``opentelemetry-api``/``-sdk``, the X-Ray propagator, ``msgpack``);
* ``theirs``: ``pip install -c constraints.txt datadog-lambda`` (pulls ``ddtrace``);
* ``runtime``: ``boto3`` installed with ``pip --target``, put on ``PYTHONPATH`` for the
  "+ boto3" rows, as the Lambda Python runtime ships it beside the function (``/var/runtime``).

The venvs live under ``.bench-venvs/`` (``BENCH_VENVS`` overrides; git-ignored) and are reused;
ours is reinstalled whenever the package's source or ``pyproject.toml`` changes, the others when
``constraints.txt`` does (or with ``--rebuild``). Building them needs PyPI the first time.

What is measured is the same as ``bench_wrapper.py``'s import row: ``import
otel_dd_lambda.handler`` (which runs ``configure()`` and wraps ``DD_LAMBDA_HANDLER``) against
``import datadog_lambda.wrapper``, under the same environment (``AWS_LAMBDA_FUNCTION_NAME``,
``DD_TRACE_MANAGED_SERVICES``, ``DD_LOGS_INJECTION``, ``DD_COLD_START_TRACING=false``, ...), with
``bench_wrapper.FAKE_EXTENSION`` ("the Datadog extension is installed") and without it (then
datadog_lambda takes its no-extension path, and ours its log mode). Import time is
``bench_import.import_cost_ms`` (fresh interpreters, median over a bare interpreter of the same
venv, interleaved with it); since the two sides are different interpreters, each round measures
one side then the other (alternating which goes first), and the figure is the median of the
rounds' medians, with their spread printed as the noise indicator. RSS is ``VmRSS`` from
``/proc/self/status`` after the import minus that of a bare interpreter of the same venv and
environment (median of ``--rss-samples``). ``--importtime N`` adds the N largest cumulative
``-X importtime`` entries of ours in its deployed venv (median of 5 runs).

The "OTel floor" column is ``import opentelemetry.sdk.trace`` in ours' venv: what any handler
built on the OTel SDK pays before a line of its own (the API's runtime-context entry-point scan
and ``importlib_metadata``, ``asyncio`` via ``opentelemetry.util._decorator``, the SDK's
``resources``). Its ratio to theirs bounds what changes to this package alone can reach.

The repo's test venv rows are there for comparison with ``bench_wrapper.py``; note that its bare
interpreter already imports ~35 stdlib modules (``pathlib``, ``re``, ``enum``, ...) through the
editable install's ``.pth`` finder, which therefore are not charged to either side there.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_import import _env as import_env  # noqa: E402
from bench_import import import_cost_ms  # noqa: E402
from bench_wrapper import FAKE_EXTENSION  # noqa: E402

CONSTRAINTS = os.path.join(REPO, "constraints.txt")
CACHE = os.environ.get("BENCH_VENVS") or os.path.join(REPO, ".bench-venvs")

# The statements of bench_wrapper.py's import row (defined inside its main(), so restated here).
STATEMENTS = {
    "ours": "import otel_dd_lambda.handler",  # configure() + wrap DD_LAMBDA_HANDLER, at import
    "theirs": "import datadog_lambda.wrapper",
}
# What any handler on the OTel SDK imports before a line of its own (ours' venv, no extension):
# ``opentelemetry.trace`` (with the API's entry-point scan and asyncio) and the SDK's tracer.
FLOOR = "import opentelemetry.sdk.trace"
TARGETS = {"import": 0.25, "rss": 0.4}  # the ratios, ours / theirs

RSS_SNIPPET = (
    "\nimport re as _re\n_s = open('/proc/self/status').read()\n"
    "print(_re.search(r'VmRSS:\\s+(\\d+)', _s).group(1))\n"
)
COUNT_DISTS = "import importlib.metadata as m; print(len({d.metadata['Name'] for d in m.distributions()}))"


# ---------------------------------------------------------------- the venvs


def _run(cmd: Sequence[str], **kwargs) -> None:
    print("   $ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kwargs)


def _digest(paths: Sequence[str]) -> str:
    """A hash of the files under ``paths`` (names and contents, bytecode left out)."""
    files = []
    for top in paths:
        if os.path.isfile(top):
            files.append(top)
            continue
        for root, dirs, names in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            files.extend(os.path.join(root, n) for n in names if not n.endswith((".pyc", ".pyo")))
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(os.path.relpath(path, REPO).encode() + b"\0")
        with open(path, "rb") as handle:
            h.update(handle.read())
    return h.hexdigest()


def _stamp(venv: str) -> str:
    return os.path.join(venv, ".bench-stamp")


def _read_stamp(venv: str) -> Optional[str]:
    try:
        with open(_stamp(venv)) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _write_stamp(venv: str, value: str) -> None:
    with open(_stamp(venv), "w") as handle:
        handle.write(value + "\n")


def _base_python() -> str:
    # The interpreter this venv was made from (the same Python on both sides and in the test venv).
    return getattr(sys, "_base_executable", None) or sys.executable


def _new_venv(path: str) -> str:
    shutil.rmtree(path, ignore_errors=True)
    _run([_base_python(), "-m", "venv", path])
    return os.path.join(path, "bin", "python")


def ensure_ours(rebuild: bool) -> str:
    venv = os.path.join(CACHE, "ours")
    python = os.path.join(venv, "bin", "python")
    sources = [os.path.join(REPO, "otel_dd_lambda"), os.path.join(REPO, "pyproject.toml"), CONSTRAINTS]
    stamp = _digest(sources)
    if not rebuild and os.path.exists(python) and _read_stamp(venv) == stamp:
        return python
    print(" - building %s" % venv, flush=True)
    if rebuild or not os.path.exists(python):
        python = _new_venv(venv)
    # Install from a snapshot, so that the build neither writes into the work tree (build/,
    # egg-info) nor picks up a half-saved file of someone editing it.
    with tempfile.TemporaryDirectory(prefix="otel-dd-lambda-src-") as tmp:
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(os.path.join(REPO, name), src)
        shutil.copytree(os.path.join(REPO, "otel_dd_lambda"), os.path.join(src, "otel_dd_lambda"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        wheels = os.path.join(tmp, "wheels")
        _run([python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, src])
        (wheel,) = [os.path.join(wheels, w) for w in os.listdir(wheels)]
        _run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel])
        _run([python, "-m", "pip", "install", "-q", "-c", CONSTRAINTS, wheel])  # its dependencies
    _write_stamp(venv, stamp)
    return python


def ensure_pip_venv(name: str, requirement: str, rebuild: bool) -> str:
    venv = os.path.join(CACHE, name)
    python = os.path.join(venv, "bin", "python")
    stamp = requirement + " " + _digest([CONSTRAINTS])
    if not rebuild and os.path.exists(python) and _read_stamp(venv) == stamp:
        return python
    print(" - building %s" % venv, flush=True)
    python = _new_venv(venv)
    _run([python, "-m", "pip", "install", "-q", "-c", CONSTRAINTS, requirement])
    _write_stamp(venv, stamp)
    return python


def ensure_runtime(python: str, rebuild: bool) -> str:
    """boto3 + botocore in a directory of their own, as the Lambda runtime's /var/runtime."""
    target = os.path.join(CACHE, "runtime")
    stamp = "boto3 " + _digest([CONSTRAINTS])
    if not rebuild and os.path.isdir(target) and _read_stamp(target) == stamp:
        return target
    print(" - building %s" % target, flush=True)
    shutil.rmtree(target, ignore_errors=True)
    _run([python, "-m", "pip", "install", "-q", "--target", target, "-c", CONSTRAINTS, "boto3"])
    shutil.rmtree(os.path.join(target, "bin"), ignore_errors=True)
    _write_stamp(target, stamp)
    return target


# ---------------------------------------------------------------- measuring


def bench_environ(app_dir: str, extra_path: Sequence[str] = ()) -> Dict[str, str]:
    """The environment of bench_wrapper.py's import row (its settings, its handler module)."""
    env = {k: v for k, v in import_env().items() if not k.startswith(("DD_", "OTEL_", "AWS_", "_X_AMZN"))}
    env.pop("VIRTUAL_ENV", None)
    env.update({
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_REGION": "us-east-1", "DD_TRACE_ENABLED": "true",
        "DD_ENHANCED_METRICS": "false", "DD_COLD_START_TRACING": "false",
        "DD_TRACE_MANAGED_SERVICES": "true", "DD_LOGS_INJECTION": "true",
        "DD_LAMBDA_HANDLER": "bench_app.handler", "PYTHONPATH": os.pathsep.join([app_dir, *extra_path]),
    })
    return env


@contextlib.contextmanager
def environ(env: Mapping[str, str]) -> Iterator[None]:
    """import_cost_ms runs its children with os.environ: swap it for the duration."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def statements(side: str) -> Dict[Tuple[str, bool], str]:
    """(side, fake extension on?) -> statement; ours' interpreter also runs the OTel floor."""
    out = {(side, True): FAKE_EXTENSION + STATEMENTS[side], (side, False): STATEMENTS[side]}
    if side == "ours":
        out[("floor", False)] = FLOOR
    return out


def import_ms(pythons: Mapping[str, str], env: Mapping[str, str], runs: int, rounds: int) -> Dict[Tuple[str, bool], List[float]]:
    """Per (side, extension): the median (ms over bare) of each round."""
    out: Dict[Tuple[str, bool], List[float]] = {}
    sides = list(pythons)
    for i in range(rounds):
        order = sides if i % 2 == 0 else sides[::-1]
        groups: Dict[str, Dict[Tuple[str, bool], str]] = {}
        for side in order:  # one call per interpreter: shared ones are interleaved statement by statement
            groups.setdefault(pythons[side], {}).update(statements(side))
        for python, stmts in groups.items():
            labels = {"%s|%s" % key: key for key in stmts}
            with environ(env):
                result = import_cost_ms({label: stmts[key] for label, key in labels.items()},
                                        runs=runs, python=python)
            for label, key in labels.items():
                out.setdefault(key, []).append(result[label])
    return out


def rss_kb(python: str, code: str, env: Mapping[str, str], samples: int) -> float:
    values = []
    for _ in range(samples):
        out = subprocess.run([python, "-c", code + RSS_SNIPPET], env=dict(env), capture_output=True,
                             text=True, check=True)
        values.append(int(out.stdout.split()[-1]))
    return statistics.median(values)


def rss_mb(pythons: Mapping[str, str], env: Mapping[str, str], samples: int) -> Dict[Tuple[str, bool], Tuple[float, float]]:
    """Per (side, extension): (VmRSS increment over a bare interpreter of that venv, bare) in MB."""
    out = {}
    for side, python in pythons.items():
        bare = rss_kb(python, "pass", env, samples)
        for key, code in statements(side).items():
            out[key] = ((rss_kb(python, code, env, samples) - bare) / 1024, bare / 1024)
    return out


def count_dists(python: str, env: Mapping[str, str]) -> int:
    out = subprocess.run([python, "-c", COUNT_DISTS], env=dict(env), capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def importtime(python: str, env: Mapping[str, str], top: int, runs: int = 5) -> List[Tuple[str, float, float]]:
    """The ``top`` largest cumulative -X importtime entries of ours: (module, cumulative ms, self ms)."""
    cumulative: Dict[str, List[float]] = {}
    own: Dict[str, List[float]] = {}
    code = FAKE_EXTENSION + STATEMENTS["ours"]
    for _ in range(runs):
        err = subprocess.run([python, "-X", "importtime", "-c", code], env=dict(env), capture_output=True,
                             text=True, check=True).stderr
        for m in re.finditer(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", err):
            name = "  " * (len(m.group(3)) // 2) + m.group(4)
            own.setdefault(name, []).append(int(m.group(1)) / 1000)
            cumulative.setdefault(name, []).append(int(m.group(2)) / 1000)
    rows = [(name, statistics.median(v), statistics.median(own[name])) for name, v in cumulative.items()]
    rows.sort(key=lambda row: -row[1])
    return rows[:top]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per round (import_cost_ms)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating which side goes first")
    parser.add_argument("--rss-samples", type=int, default=3)
    parser.add_argument("--importtime", type=int, default=0, metavar="N",
                        help="also list ours' N largest cumulative -X importtime entries (deployed venv)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the venvs from scratch")
    parser.add_argument("--skip-test-venv", action="store_true", help="no rows for the repo's test venv")
    args = parser.parse_args(argv)

    os.makedirs(CACHE, exist_ok=True)
    print("== venvs under %s" % CACHE, flush=True)
    ours = ensure_ours(args.rebuild)
    theirs = ensure_pip_venv("theirs", "datadog-lambda", args.rebuild)
    runtime = ensure_runtime(ours, args.rebuild)

    app_dir = tempfile.mkdtemp(prefix="bench-app-")
    with open(os.path.join(app_dir, "bench_app.py"), "w") as handle:
        handle.write("def handler(event, context):\n    return None\n")
    setups = []
    if not args.skip_test_venv:
        setups.append(("repo test venv", {"ours": sys.executable, "theirs": sys.executable}, ()))
    setups.append(("deployed", {"ours": ours, "theirs": theirs}, ()))
    setups.append(("deployed + boto3", {"ours": ours, "theirs": theirs}, (runtime,)))

    results = []
    for name, pythons, extra_path in setups:
        env = bench_environ(app_dir, extra_path)
        dists = {side: count_dists(python, env) for side, python in pythons.items()}
        print(" - measuring %s (distributions on sys.path: ours %d, theirs %d)"
              % (name, dists["ours"], dists["theirs"]), flush=True)
        results.append((name, dists, import_ms(pythons, env, args.runs, args.rounds),
                        rss_mb(pythons, env, args.rss_samples)))

    print("\n== cold import + init (median ms over a bare interpreter of the same venv; %d runs x %d rounds;"
          " [min..max] of the rounds' medians); target ratio <= %.2fx" % (args.runs, args.rounds, TARGETS["import"]))
    print("%-18s %-4s %7s %11s %7s %11s %7s   %s" % (
        "environment", "ext", "ours", "", "theirs", "", "ratio", "OTel floor (%s), /theirs" % FLOOR))
    for name, _dists, ms, _ in results:
        floor = statistics.median(ms[("floor", False)])
        for ext in (True, False):
            o, t = ms[("ours", ext)], ms[("theirs", ext)]
            print("%-18s %-4s %7.1f %11s %7.1f %11s %6.2fx   %.1f, %.2fx" % (
                name, "on" if ext else "off", statistics.median(o), "[%.0f..%.0f]" % (min(o), max(o)),
                statistics.median(t), "[%.0f..%.0f]" % (min(t), max(t)), statistics.median(o) / statistics.median(t),
                floor, floor / statistics.median(t)))
    print("\n== RSS after import (VmRSS MB over a bare interpreter of the same venv, median of %d); "
          "target ratio <= %.2fx" % (args.rss_samples, TARGETS["rss"]))
    print("%-18s %-4s %9s %10s %7s   %-22s %s" % ("environment", "ext", "ours +MB", "theirs +MB", "ratio",
                                                 "bare MB (ours, theirs)", "OTel floor +MB, /theirs"))
    for name, _, _, rss in results:
        floor = rss[("floor", False)][0]
        for ext in (True, False):
            (o, ob), (t, tb) = rss[("ours", ext)], rss[("theirs", ext)]
            print("%-18s %-4s %9.1f %10.1f %6.2fx   %-22s %.1f, %.2fx" % (
                name, "on" if ext else "off", o, t, o / t, "%.1f, %.1f" % (ob, tb), floor, floor / t))
    print("\n(distributions on sys.path: %s)" % "; ".join(
        "%s: ours %d, theirs %d" % (name, d["ours"], d["theirs"]) for name, d, _, _ in results))

    if args.importtime:
        print("\n== ours, deployed venv, fake extension: largest cumulative -X importtime entries "
              "(ms, median of 5; indentation = nesting)")
        print("%9s %9s  %s" % ("cumul", "self", "module"))
        for module, cumul, self_ms in importtime(ours, bench_environ(app_dir), args.importtime):
            print("%9.1f %9.1f  %s" % (cumul, self_ms, module))
    shutil.rmtree(app_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Lambda layer of ``otel-dd-lambda layer``, built for this machine and run as Lambda runs it.

The zip is unpacked (modes from its entries, as Lambda's extraction applies them) into a
directory playing ``/opt``. The function runs under the real runtime client (``awslambdaric``)
against the Runtime API emulator, started through the layer's exec wrapper, in a fresh virtual
environment (no site-packages) whose ``PYTHONPATH`` is what Lambda's is: the task root, the
layer's ``python/``, and a directory playing ``/var/runtime`` that holds only the runtime client
and its own dependencies. So the package and every dependency must come from the layer: a
control run of a copy missing one dependency shows the test would notice.

Building needs pip and a package index (PyPI); each layer is built once per module.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import platform
import re
import stat
import subprocess
import sys
import textwrap
import zipfile
from typing import Dict, List, Set

import pytest

from otel_dd_lambda._version import __version__
from otel_dd_lambda.cli import main
from otel_dd_lambda.commands.layer import WRAPPER, ZIP_TIME
from tests.support.agent import TestAgent
from tests.support.lambda_runtime import MANAGED_BOOTSTRAP, ROOT, LambdaProcess, Result, RuntimeAPI

ARCH = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
PYTHON = "%d.%d" % sys.version_info[:2]
OTHER_PYTHON = "3.12" if PYTHON != "3.12" else "3.11"
OTHER_ARCH = "x86_64" if ARCH == "arm64" else "arm64"
CONSTRAINTS = os.path.join(ROOT, "constraints.txt")
RUNTIME_DISTRIBUTIONS = ("awslambdaric", "simplejson", "snapshot-restore-py")  # what /var/runtime provides
TEST_STACK = ("pytest", "ddtrace", "datadog_lambda", "awslambdaric", "boto3", "botocore", "moto", "hypothesis")

USER_MODULE = '''
    import sys

    from opentelemetry import trace


    def fn(event, context):
        span = trace.get_current_span().get_span_context()
        origins = {name: getattr(sys.modules.get(name), "__file__", None)
                   for name in ("otel_dd_lambda", "otel_dd_lambda.handler", "opentelemetry.sdk.trace",
                                "opentelemetry.semconv", "msgpack", "awslambdaric")}
        return {"echo": event, "request_id": context.aws_request_id, "span_id": span.span_id,
                "origins": origins}
'''


def build(out: str, *args: str) -> str:
    """``otel-dd-lambda layer`` as a user runs it; the path it printed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["layer", "--out", out, "-c", CONSTRAINTS] + list(args))
    assert code == 0, stderr.getvalue()
    path = stdout.getvalue().strip()
    assert os.path.isfile(path), stdout.getvalue()
    build.messages = stderr.getvalue()  # type: ignore[attr-defined]
    return path


def sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def unpack(zip_path: str, dest: str) -> None:
    """Extract as Lambda does: each entry's Unix mode applied."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            target = archive.extract(info, dest)
            os.chmod(target, (info.external_attr >> 16) & 0o777)


def tree(root: str) -> Set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


@pytest.fixture(scope="module")
def layer_zip(tmp_path_factory) -> str:
    path = build(str(tmp_path_factory.mktemp("dist")), "--python", PYTHON, "--arch", ARCH)
    assert "byte-compiled" in build.messages  # type: ignore[attr-defined]
    return path


@pytest.fixture(scope="module")
def opt(layer_zip, tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("opt"))
    unpack(layer_zip, root)
    return root


@pytest.fixture(scope="module")
def var_runtime(tmp_path_factory) -> str:
    """The runtime client and its dependencies only, linked from this environment."""
    root = tmp_path_factory.mktemp("runtime")
    for name in RUNTIME_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        for top in sorted({str(f).split("/")[0] for f in dist.files or ()}):
            source = os.path.join(str(dist.locate_file("")), top)
            if top not in ("..", "bin", "__pycache__") and not (root / top).exists():
                (root / top).symlink_to(source)
    return str(root)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A fresh venv's interpreter: the standard library and nothing installed."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # the isolation the test relies on: nothing of this project or its dependencies is importable
    probe = subprocess.run([python, "-c", "import opentelemetry"], capture_output=True, timeout=30,
                           env={"PATH": os.environ.get("PATH", "")}, cwd=str(venv))
    assert probe.returncode != 0
    return python


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("task")
    (root / "user_module.py").write_text(textwrap.dedent(USER_MODULE).lstrip())
    return str(root)


@pytest.fixture(scope="module")
def agent(sessionless_agent: TestAgent) -> TestAgent:
    return sessionless_agent


def lambda_spans(agent: TestAgent) -> Dict[str, Dict]:
    return {s["meta"]["request_id"]: s for chunk in agent.traces(None) for s in chunk
            if s["name"] == "aws.lambda" and "request_id" in s.get("meta", {})}


def run_function(opt_dir: str, task_root: str, var_runtime: str, python: str, agent: TestAgent,
                 events: List[Dict]) -> List[Result]:
    env = {
        "PYTHONPATH": os.pathsep.join((task_root, os.path.join(opt_dir, "python"), var_runtime)),
        "LAMBDA_RUNTIME_DIR": var_runtime,
        "AWS_LAMBDA_EXEC_WRAPPER": os.path.join(opt_dir, WRAPPER),
        "DD_TRACE_AGENT_URL": agent.url,
    }
    # what Lambda's bootstrap does: $AWS_LAMBDA_EXEC_WRAPPER <python> <runtime client main>
    command = [env["AWS_LAMBDA_EXEC_WRAPPER"], python, "-c", MANAGED_BOOTSTRAP]
    observe = lambda result: set(lambda_spans(agent))  # noqa: E731 (the agent's spans at receipt)
    with RuntimeAPI(on_result=observe) as api, \
            LambdaProcess(api, task_root, "user_module.fn", env, command=command) as process:
        results = []
        for event in events:
            try:
                results.append(api.call(event, timeout=20))
            except AssertionError:
                raise AssertionError("no outcome\nstdout:\n%s\nstderr:\n%s"
                                     % (process.stdout[-3000:], process.stderr[-3000:])) from None
        return results


def test_layer_runs_the_function_traced_with_only_its_own_contents(opt, task_root, var_runtime, bare_python, agent):
    before = tree(opt)
    events = [{"order": 1, "é": [1.5, None]}, {"order": 2}]
    results = run_function(opt, task_root, var_runtime, bare_python, agent, events)
    spans = lambda_spans(agent)
    layer_python = os.path.join(opt, "python") + os.sep
    assert len(results) == len(events)
    for index, (event, result) in enumerate(zip(events, results)):
        assert result.kind == "response", result
        body = result.json
        assert body["echo"] == event and body["request_id"] == result.request_id
        origins = body["origins"]
        assert origins.pop("awslambdaric").startswith(var_runtime + os.sep)
        assert all(path and path.startswith(layer_python) for path in origins.values()), origins
        # the invocation span reached the agent before the response, and it is the one that was current
        assert result.request_id in result.observed
        span = spans[result.request_id]
        assert span["span_id"] == body["span_id"] != 0
        assert span["type"] == "serverless" and span["error"] == 0
        assert span["meta"]["cold_start"] == ("true" if index == 0 else "false")
    # every module imported had its .pyc in the layer: nothing was compiled into /opt at run time
    assert tree(opt) == before


def test_a_layer_missing_a_dependency_is_noticed(opt, tmp_path, task_root, var_runtime, bare_python, agent):
    """The control: the same run with msgpack left out of the layer sends no span, while the
    function's result stays right (tracing never breaks the function)."""
    pruned = tmp_path / "opt"
    (pruned / "python").mkdir(parents=True)
    (pruned / WRAPPER).symlink_to(os.path.join(opt, WRAPPER))
    for name in os.listdir(os.path.join(opt, "python")):
        if not name.startswith("msgpack"):
            (pruned / "python" / name).symlink_to(os.path.join(opt, "python", name))
    assert importlib.util.find_spec("msgpack") is not None  # present here, absent there
    (result,) = run_function(str(pruned), task_root, var_runtime, bare_python, agent, [{"order": 3}])
    assert result.kind == "response" and result.json["echo"] == {"order": 3}
    assert result.json["origins"]["msgpack"] is None
    assert result.request_id not in lambda_spans(agent)


def test_layer_contents(layer_zip):
    assert os.path.basename(layer_zip) == "otel-dd-lambda-%s-py%s-%s.zip" % (__version__, PYTHON, ARCH)
    with zipfile.ZipFile(layer_zip) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        assert names == sorted(names) and len(set(names)) == len(names)
        assert all(info.date_time == ZIP_TIME for info in infos)
        modes = {info.filename: info.external_attr >> 16 for info in infos}
        assert modes[WRAPPER] == stat.S_IFREG | 0o755
        assert modes["python/otel_dd_lambda/exec_wrapper/" + WRAPPER] == stat.S_IFREG | 0o755
        assert set(modes.values()) <= {stat.S_IFREG | 0o644, stat.S_IFREG | 0o755}
        assert archive.read(WRAPPER) == archive.read("python/otel_dd_lambda/exec_wrapper/" + WRAPPER)
        assert all(n.startswith("python/") for n in names if n != WRAPPER)
        assert not [n for n in names if n.startswith("python/bin/") or n.endswith("/direct_url.json")]
        dists = {}
        for name in names:
            match = re.match(r"^python/([^/]+)-[^-/]+\.dist-info/METADATA$", name)
            if match:
                dists[match.group(1).lower().replace("-", "_")] = archive.read(name).decode()
        # the run-time dependencies, and nothing of the test stack
        for requirement in ("otel_dd_lambda", "opentelemetry_api", "opentelemetry_sdk",
                            "opentelemetry_propagator_aws_xray", "msgpack"):
            assert requirement in dists, sorted(dists)
        assert not set(TEST_STACK) & set(dists)
        # each distribution's unconditional requirements are in the layer too
        for metadata in dists.values():
            for line in metadata.splitlines():
                if line.startswith("Requires-Dist:") and ";" not in line:
                    required = re.split(r"[\s<>=!~\[(]", line.split(":", 1)[1].strip())[0]
                    assert required.lower().replace("-", "_").replace(".", "_") in dists, line
        # byte code for this Python only, hash-based and unchecked (a read-only /opt)
        tag = sys.implementation.cache_tag
        pycs = {n for n in names if n.endswith(".pyc")}
        assert pycs and all(".%s.pyc" % tag in n for n in pycs)
        for name in names:
            if name.endswith(".py"):
                directory, _, module = name.rpartition("/")
                pyc = "%s/__pycache__/%s.%s.pyc" % (directory, module[:-3], tag)
                assert pyc in pycs, name
        flags = {int.from_bytes(archive.read(p)[4:8], "little") for p in sorted(pycs)[:50]}
        assert flags == {0b01}  # PEP 552: hash-based, not checked against the source


def test_rebuild_is_byte_identical(layer_zip, tmp_path):
    again = build(str(tmp_path), "--python", PYTHON, "--arch", ARCH)
    assert sha256(again) == sha256(layer_zip)


def test_other_python_and_architecture(tmp_path):
    path = build(str(tmp_path), "--python", OTHER_PYTHON, "--arch", OTHER_ARCH)
    assert "not byte-compiled" in build.messages  # type: ignore[attr-defined]
    assert os.path.basename(path) == "otel-dd-lambda-%s-py%s-%s.zip" % (__version__, OTHER_PYTHON, OTHER_ARCH)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    machine = "aarch64" if OTHER_ARCH == "arm64" else "x86_64"
    extensions = [n for n in names if n.startswith("python/msgpack/") and n.endswith(".so")]
    assert extensions == ["python/msgpack/_cmsgpack.cpython-%s-%s-linux-gnu.so"
                          % (OTHER_PYTHON.replace(".", ""), machine)]


def test_bad_arguments_and_help(tmp_path, capsys):
    assert main(["layer", "--python", "3", "--out", str(tmp_path)]) == 1
    assert "--python must look like 3.11" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["layer", "--arch", "ppc64le"])
    assert exit_info.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["layer", "-h"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--python X.Y", "--arch {arm64,x86_64}", "--out DIR", "/opt/" + WRAPPER):
        assert option in usage
    assert not glob.glob(os.path.join(str(tmp_path), "*.zip"))

"""The ``otel-dd-lambda inspect`` command."""

from __future__ import annotations

import json

from otel_dd_lambda.cli import main
from tests.support.samples import SAMPLES as SAMPLES_DIR

SAMPLES = str(SAMPLES_DIR) + "/"


def test_inspect_sqs_batch(capsys, monkeypatch):
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    assert main(["inspect", "--json", SAMPLES + "sqs-batch.json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trigger"] == "sqs" and report["parent"]["datadog"]["trace_id"] == "2684756524522091840"
    assert len(report["links"]) >= 2 and report["parent"]["xray"].startswith("Root=1-")


def test_inspect_text_and_ignored_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    event = json.load(open(SAMPLES + "authorizer-request-api-gateway-v1-cached.json"))
    path = tmp_path / "e.json"
    path.write_text(json.dumps(event))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "trigger:  api-gateway" in out and "cached authorizer" in out


def test_inspect_unreadable_json(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("otel-dd-lambda inspect: cannot read") and "\n" not in err

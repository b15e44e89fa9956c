"""SmolLM2-135M end to end: alias → GGUF cache → loss → record → CLI."""

import json
import os
from importlib import metadata

import pytest
from typer.testing import CliRunner

from complaw.cli import app
from complaw.data import load_blocks
from complaw.evaluate.intrinsic import evaluate_loss
from tests.unit.test_intrinsic import reference_loss

pytestmark = pytest.mark.integration
runner = CliRunner()

needs_data = pytest.mark.skipif(
    not os.environ.get("COMPLAW_DATA_DIR"), reason="set COMPLAW_DATA_DIR (../shared/datasets)"
)


def test_loads_the_real_model(smollm2):
    model, tok = smollm2.model, smollm2.tokenizer
    assert smollm2.adapter.name == "llama" and smollm2.adapter.tied_embeddings(model)
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])


@needs_data
def test_wikitext2_loss_is_sensible_and_matches_hf(smollm2):
    blocks = load_blocks("wikitext2:test", smollm2.tokenizer, 512, max_tokens=2048)
    result = evaluate_loss(smollm2.model, blocks, batch_size=2)
    assert 2.0 < result.loss < 4.5  # a 135M model on WikiText-2: perplexity ~10-90
    assert result.loss == pytest.approx(reference_loss(smollm2.model, blocks), abs=1e-5)


@needs_data
def test_cli_evaluate_writes_a_full_record(tmp_path):
    out = tmp_path / "runs"
    args = ["evaluate", "--model", "smollm2-135m", "--data", "ptb:test", "--seq-len", "256",
            "--max-tokens", "512", "--batch-size", "2", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    [path] = out.glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["id"] == path.stem
    assert record["config"]["eval"] == {"kind": "intrinsic", "data": ["ptb:test"], "seq_len": 256,
                                        "max_tokens": 512, "batch_size": 2}
    assert record["data"]["ptb:test"]["file"] == "ptb/ptb.test.txt"  # the data variant
    assert record["params"]["total"] == 134_515_008
    assert record["environment"]["versions"]["torch"] == metadata.version("torch")
    [metric] = record["metrics"]
    assert metric["metric"] == "loss" and metric["tokens"] == 2 * 255
    assert "perplexity" in result.output


@pytest.mark.parametrize("args,message", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--model", "smollm2-135m", "--data", "c4"], "unknown dataset 'c4'"),
    (["--model", "smollm2-135m", "--seq-len", "0"], "seq_len must be a positive"),
    (["--model", "smollm2-135m", "--seq-len", "512", "--max-tokens", "100"],
     "max_tokens=100 is smaller than one block"),
    (["--model", "smollm2-135m", "--data", "wikitext2:train"], "not found: looked at"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, args,
                                                      message):
    from complaw.cli import main

    out = tmp_path / "runs"
    out.mkdir()
    (out / "earlier.json").write_text("{}")
    monkeypatch.setattr("sys.argv", ["complaw", "evaluate", *args, "--out", str(out),
                                     "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert [p.name for p in out.iterdir()] == ["earlier.json"]
    assert (out / "earlier.json").read_text() == "{}"
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_out_is_a_file(tmp_path, capsys, monkeypatch):
    from complaw.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("keep")
    monkeypatch.setattr("sys.argv", ["complaw", "evaluate", "--model", "smollm2-135m",
                                     "--out", str(blocker)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and blocker.read_text() == "keep"
    err = capsys.readouterr().err
    assert "is a file" in err and len(err.strip().splitlines()) == 1

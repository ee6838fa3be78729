"""The full-scale VLM parts (hub model builder, hub data + collator, SigLIP cleaner, accelerate runtime) on
local stand-ins: a tiny SigLIP and a tiny Llama saved to folders (loaded by path exactly as hub ids would
be), parquet datasets in Table-9 formats, CPU, fp32, two optimizer steps per stage. Nothing is downloaded.
They run through the same stage loop as the toy parts (infir_lib.vlm.curriculum) and pass the same
curriculum checks (:func:`assert_curriculum`, also applied to the toy run in tests/test_vlm_build.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM, SiglipImageProcessorPil

from infir_lib.config import load_config
from infir_lib.models import train_tokenizer
from infir_lib.vlm import make_items, mismatch_pairs
from infir_lib.vlm.config import VLMConfig
from infir_lib.vlm.contrastive import build_siglip
from infir_lib.vlm.hub_data import (ConversationCollator, Conversation, DatasetStream, UnsupportedDataset, adapt,
                                    detect_format, parse_dataset_id, write_local_dataset)

SIZE, PATCH = 32, 16


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Tiny checkpoints + three local datasets (llava, qa, cauldron formats)."""
    root = tmp_path_factory.mktemp("vlm_full")
    texts = [f"{it.prompt} {it.answer}" for k in ("caption", "ocr", "vmath") for it in make_items(k, 80, 1, SIZE)]
    tok = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=1, intermediate_size=64, max_position_embeddings=512,
                                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    lm.save_pretrained(root / "lm")
    tok.save_pretrained(root / "lm")
    siglip = build_siglip(tok, 32, 1, 2, 64, SIZE, PATCH, max_text_len=16)
    siglip.save_pretrained(root / "siglip")
    tok.save_pretrained(root / "siglip")
    SiglipImageProcessorPil(size={"height": SIZE, "width": SIZE}).save_pretrained(root / "siglip")
    captions = mismatch_pairs(make_items("caption", 24, 2, SIZE), 0.25, 2)
    write_local_dataset(root / "captions", captions, "llava")
    write_local_dataset(root / "ocr", make_items("ocr", 16, 3, SIZE), "qa")
    write_local_dataset(root / "vmath", make_items("vmath", 16, 4, SIZE), "cauldron")
    return root


def _config(root, **over) -> VLMConfig:
    base = {"lm_name_or_path": str(root / "lm"), "vision_name_or_path": str(root / "siglip"),
            "image_size": SIZE, "patch_size": PATCH, "stage1_datasets": [str(root / "captions")],
            "stage2_datasets": [str(root / "ocr")], "stage3_datasets": [str(root / "vmath")],
            "stage_samples": [8, 8, 8], "global_batch_size": 4, "micro_batch_size": 2, "max_steps": 2,
            "seq_len": 128, "threshold_method": "quantile", "threshold_quantile": 0.25, "clean_calibration": 8,
            "clean_text_len": 16, "mixed_precision": "no", "log_every": 1, "output_dir": str(root / "run")}
    return load_config(VLMConfig, "configs/full/vlm.yaml", {**base, **over})


def _tensors(folder):
    return load_file(str(folder / "model.safetensors"))


def assert_curriculum(r) -> None:
    """What every curriculum run shows, at either scale: the three stages in order, stage 1 trained only the
    projector, stage 2 the tower + projector, stage 3 everything; the summary's keys; the saved model and
    processor load and agree on the image token."""
    assert list(r.summary["per_stage"]) == ["stage1", "stage2", "stage3"]
    parts = r.summary["parameters"]
    trained = {h["stage"]: h["trainable"] for h in r.history}
    assert trained == {"stage1": parts["projector"], "stage2": parts["projector"] + parts["vision"],
                       "stage3": sum(parts.values())}
    assert {"metrics", "per_stage", "cleaning", "history", "parameters", "schedule", "seed"} <= set(r.summary)
    assert r.summary["schedule"] == "curriculum" and r.metrics
    model, processor = r.load_model(), r.load_processor()
    assert model.config.image_token_index == processor.tokenizer.convert_tokens_to_ids("<image>")


def test_full_path_trains_the_curriculum_on_local_stand_ins(stand_ins):
    from infir_lib import vlm
    from infir_lib.vlm import build, curriculum

    cfg = _config(stand_ins)
    r = vlm.run(cfg)
    assert list(r.summary["per_stage"]) == ["stage1", "stage2", "stage3"]
    assert r.summary["grad_accumulation"] == 2  # 4 = 2 per micro-batch x 1 process x 2
    # App. E cleaning on stage 1: the quantile cut drops about a quarter of the calibration pairs, counted
    cleaning = r.summary["cleaning"]
    assert cleaning["scored"] >= 8 and cleaning["dropped"] >= 1 and cleaning["kept"] >= 1
    assert cleaning["scored"] == cleaning["dropped"] + cleaning["kept"]
    # what each stage trained: frozen parts unchanged between checkpoints, trained ones changed
    ck = {s: _tensors(r.output_dir / "checkpoints" / s) for s in ("stage1", "stage2", "stage3")}
    lm0 = load_file(str(stand_ins / "lm" / "model.safetensors"))
    vis0 = load_file(str(stand_ins / "siglip" / "model.safetensors"))
    part = lambda k: "vision" if "vision_tower" in k else "projector" if "multi_modal_projector" in k else "language"
    keys = [k for k in ck["stage1"] if "post_layernorm" not in k]  # post_layernorm is never read by LLaVA

    def changed(a, b, which):
        return {k: not torch.equal(ck[a][k], ck[b][k]) for k in keys if part(k) == which}

    lang = "model.language_model.layers.0.mlp.up_proj.weight"
    assert torch.equal(ck["stage1"][lang], lm0["model.layers.0.mlp.up_proj.weight"])  # LM frozen in stage 1
    vis = next(k for k in ck["stage1"] if k.startswith("model.vision_tower.") and k.endswith("layers.0.mlp.fc1.weight"))
    assert torch.equal(ck["stage1"][vis], vis0["vision_model.encoder.layers.0.mlp.fc1.weight"])  # tower frozen
    assert all(changed("stage1", "stage2", "projector").values())
    assert all(changed("stage1", "stage2", "vision").values())
    assert not any(changed("stage1", "stage2", "language").values())
    assert all(changed("stage2", "stage3", "language").values())
    trained = {h["stage"]: h["trainable"] for h in r.history}
    parts = r.summary["parameters"]
    assert trained == {"stage1": parts["projector"], "stage2": parts["projector"] + parts["vision"],
                       "stage3": sum(parts.values())}
    # the exported model and processor load, and the stage records count what was read per dataset
    model, processor = r.load_model(), r.load_processor()
    assert model.config.image_token_index == processor.tokenizer.convert_tokens_to_ids("<image>")
    assert_curriculum(r)
    rec = json.loads((r.output_dir / "checkpoints" / "stage2" / "stage.json").read_text())
    assert any(v["used"] > 0 for v in rec["sources"].values())
    # the runtime is a part like the others: the same parts on the toy's runtime (plain PyTorch, a fresh
    # AdamW per stage) train the same model as on accelerate (one CPU process, one optimizer reset per stage)
    local = dataclasses.replace(cfg, output_dir=str(stand_ins / "local"))
    plain = dataclasses.replace(build.parts_for(local, stand_ins / "local"),
                                runtime=lambda: curriculum.LocalRuntime(accum=r.summary["grad_accumulation"]))
    summary = curriculum.train_curriculum(local, stand_ins / "local", plain)
    loss = lambda history: [(h["stage"], h["step"], h["loss"], h["trainable"]) for h in history]
    assert loss(summary["history"]) == loss(r.history) and summary["cleaning"] == r.summary["cleaning"]
    a, b = _tensors(stand_ins / "local" / "model"), _tensors(r.model_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a rerun resumes after the last complete stage: here stage 3's checkpoint is made incomplete
    (r.output_dir / "checkpoints" / "stage3" / "stage.json").unlink()
    again = vlm.run(cfg)
    assert [bool(s.get("resumed")) for s in again.summary["per_stage"].values()] == [True, True, False]
    assert torch.equal(_tensors(r.output_dir / "checkpoints" / "stage3")[lang], ck["stage3"][lang])  # same data, seed
    # a rerun with another config keeps no checkpoint it was not made with (the whole config is the key)
    third = vlm.run(dataclasses.replace(cfg, stage2_lr=1e-5))
    assert [bool(s.get("resumed")) for s in third.summary["per_stage"].values()] == [False, False, False]


def test_random_init_builds_the_towers_from_config_sizes(stand_ins):
    from infir_lib.vlm.hub_model import assemble

    cfg = _config(stand_ins, init="random", lm_name_or_path=None, vision_name_or_path=None,
                  lm_config="configs/toy/pretrain.yaml", vision_hidden_size=32, vision_layers=1, vision_heads=2,
                  vision_intermediate_size=64)
    model, processor = assemble(cfg)
    assert model.config.vision_config.hidden_size == 32
    assert model.config.text_config.hidden_size == load_config(
        __import__("infir_lib.pretrain.config", fromlist=["PretrainConfig"]).PretrainConfig,
        "configs/toy/pretrain.yaml").hidden_size
    batch = ConversationCollator(processor, 64)([Conversation(make_items("ocr", 1, 0, SIZE)[0].image, [("hi", "ok")])])
    assert model(**batch).loss.isfinite()


def test_unsupported_formats_raise_naming_the_dataset_and_columns(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"image": [make_items("ocr", 1, 0, SIZE)[0].image], "foo": ["x"]}).to_parquet(
        str(tmp_path / "odd" / "train-00000-of-00001.parquet"))
    with pytest.raises(UnsupportedDataset, match=r"odd.*\['foo', 'image'\]"):
        DatasetStream(str(tmp_path / "odd"))
    # images given as paths that do not resolve (a hub set whose images sit in a zip): a clear stop, not a hang
    Dataset.from_dict({"image": ["images/0.png"] * 3, "question": ["q"] * 3, "answer": ["a"] * 3}).to_parquet(
        str(tmp_path / "zipped" / "train-00000-of-00001.parquet"))
    with pytest.raises(ValueError, match=r"zipped.*(unusable|no usable row).*bad_image:FileNotFoundError"):
        next(DatasetStream(str(tmp_path / "zipped")))
    with pytest.raises(UnsupportedDataset, match="no image column.*question"):
        detect_format(["question", "answer"], "somewhere/vqa")


def test_adapters_normalise_table9_formats():
    img = make_items("ocr", 1, 0, SIZE)[0].image
    qa = adapt({"image": img, "question": "What?", "answers": [{"answer": "a"}, {"answer": "b"}, {"answer": "b"}]},
               "qa")
    assert qa.turns == [("What?", "b")]  # the most common of the annotators' answers
    llava = adapt({"image": img, "conversations": [{"from": "human", "value": "<image>\nQ1"}, {"from": "gpt", "value": "A1"},
                                                   {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]},
                  "llava")
    assert llava.turns == [("Q1", "A1"), ("Q2", "A2")]
    rel = adapt({"image": img, "instruction": "open mail", "bbox": [0.1, 0.2, 0.3, 0.4]}, "grounding")
    px = adapt({"image": img, "instruction": "open mail", "bbox": [0, 0, 16, 8]}, "grounding")  # 32x32 pixels
    assert rel.turns[0][1] == "(200, 300)" and px.turns[0][1] == "(250, 125)"
    assert parse_dataset_id("HuggingFaceM4/the_cauldron:textcaps@train").name == "textcaps"
    assert parse_dataset_id("/data/x").split == "train"


def test_collator_puts_the_loss_on_assistant_turns_only(stand_ins):
    from infir_lib.vlm.hub_model import assemble

    model, processor = assemble(_config(stand_ins))
    col = ConversationCollator(processor, 128)
    img = make_items("ocr", 1, 0, SIZE)[0].image
    ids, labels = col.encode(Conversation(img, [("read it", "cat"), ("again", "dog")]))
    tok = processor.tokenizer
    answer_text = tok.decode([t for t in labels if t != -100])
    assert answer_text == "cat<|eot_id|>dog<|eot_id|>"
    assert ids.count(tok.convert_tokens_to_ids("<image>")) == (SIZE // PATCH) ** 2


def test_one_collator_interface_the_toy_codec_and_the_conversation_collator_agree(stand_ins):
    """The two collators of the one loop make the same batch (ids, mask, labels on the answer only,
    pixels) from the same row: a generated item through the toy Codec, or the same item as a conversation
    through the ConversationCollator the hub data uses."""
    from infir_lib.vlm.hub_model import assemble
    from infir_lib.vlm.train import Codec

    _, processor = assemble(_config(stand_ins))
    items = make_items("ocr", 2, 7, SIZE) + make_items("vmath", 1, 8, SIZE)
    codec = Codec(processor)
    toy = codec.train_batch(codec.encode(items), list(range(len(items))))
    hub = ConversationCollator(processor, 512)([Conversation(it.image, [(it.prompt, it.answer)]) for it in items])
    assert set(toy) == set(hub)
    for k in toy:
        assert torch.equal(toy[k], hub[k]), k


"""The vlm stage's contract at toy scale (what chapter 7 relies on): vlm.run -> cached model + processor, on
a miniature config in an isolated cache (a 5-step LM, a few steps per stage), through the one stage loop
(infir_lib.vlm.curriculum) with the toy parts; the full parts go through the same checks in
tests/test_vlm_full.py."""

from __future__ import annotations

import yaml
from test_vlm_full import assert_curriculum  # the curriculum checks both scales' runs pass

from infir_lib.models import count_parameters


def _mini(tmp_path):
    pre = yaml.safe_load(open("configs/toy/pretrain.yaml"))
    pre.update(max_steps=4, toy_docs=300, tokenizer_train_docs=300, warmup_steps=1, eval_every=0, log_every=2)
    lm_cfg = tmp_path / "pretrain_mini.yaml"
    lm_cfg.write_text(yaml.safe_dump(pre))
    return {"lm_config": str(lm_cfg), "lm_warmup_steps": 3, "lm_warmup_items": 40, "contrastive_pairs": 48,
            "siglip_steps": 3, "siglip_batch_size": 16, "stage1_mix": "{count: 8}", "stage2_mix": "{ocr: 8, grounding: 8}",
            "stage3_mix": "{gui_task: 8, vmath: 8}", "stage1_steps": 2, "stage2_steps": 2, "stage3_steps": 2,
            "batch_size": 4, "eval_items": 4, "gui_episodes": 2, "log_every": 1}


def test_run_builds_a_cached_llava_that_loads_and_answers(tmp_path, isolated_cache):
    from infir_lib import vlm
    from infir_lib.vlm.train import Codec, generate

    ov = _mini(tmp_path)
    r = vlm.run("configs/toy/vlm.yaml", ov)
    assert (r.model_dir / "config.json").is_file()
    assert list(r.summary["per_stage"]) == ["stage1", "stage2", "stage3"]
    assert {"acc_grounding", "acc_ocr", "acc_vmath", "gui_task_success"} <= set(r.metrics)
    # stage 1 trained only the projector, stage 2 vision + projector, stage 3 everything
    trained = {h["stage"]: h["trainable"] for h in r.history}
    parts = r.summary["parameters"]
    assert trained["stage1"] == parts["projector"]
    assert trained["stage2"] == parts["projector"] + parts["vision"]
    assert trained["stage3"] == count_parameters(r.load_model())
    assert_curriculum(r)
    model, processor = r.load_model(), r.load_processor()
    codec = Codec(processor)
    items = vlm.make_items("grounding", 2, seed=5)
    answers = generate(model, codec, codec.encode(items), max_new_tokens=4)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    again = vlm.run("configs/toy/vlm.yaml", ov)  # cached: same folder, no rebuild
    assert again.output_dir == r.output_dir and again.metrics == r.metrics
    e2e = vlm.run("configs/toy/vlm.yaml", {**ov, "schedule": "end_to_end"})
    assert list(e2e.summary["per_stage"]) == ["end_to_end"] and e2e.output_dir != r.output_dir
    assert e2e.summary["per_stage"]["end_to_end"]["steps"] == 6


def test_per_item_outcomes_and_per_pair_caption_losses(tmp_path, isolated_cache):
    """Claims 11 and 12 pair arms item by item: per-pair losses must average (token-weighted) to the
    scalar loss, and per-item outcomes must agree with scoring the same items directly."""
    import pytest

    from infir_lib import vlm
    from infir_lib.vlm import toy as P
    from infir_lib.vlm.train import Codec, answer_loss, generate, score

    ov = _mini(tmp_path)
    cfg = vlm.as_config("configs/toy/vlm.yaml", ov)
    r = vlm.run(cfg)
    model, codec = r.load_model(), Codec(r.load_processor())
    enc = codec.encode(vlm.make_items("caption", 5, seed=3))
    per = P.caption_losses(model, codec, enc, batch_size=2)
    counts = [len(a) for a in enc.answer_ids]
    assert len(per) == 5 and len(set(round(x, 6) for x in per)) > 1
    assert sum(x * c for x, c in zip(per, counts)) / sum(counts) == pytest.approx(answer_loss(model, codec, enc), rel=1e-5)

    out = P.item_outcomes(r, cfg, 3, ("grounding", "ocr"))
    assert set(out) == {"grounding", "ocr"} and all(len(v) == 3 and set(v) <= {0, 1} for v in out.values())
    enc_g = codec.encode(vlm.make_items("grounding", 3, cfg.eval_seed, cfg.image_size))
    assert out["grounding"] == [int(c) for c in score(enc_g.items, generate(model, codec, enc_g))]

    res = P.alignment_run(cfg, clean=True, seed=0, heldout_pairs=6)
    assert len(res["heldout_pair_losses"]) == 6 and all(x > 0 for x in res["heldout_pair_losses"])
    assert len(res["heldout_pair_gaps"]) == 6
    # the gap is the loss with the deranged images minus the loss with the item's own image
    from infir_lib.vlm.perception import donors

    enc6 = codec.encode(vlm.make_items("caption", 6, seed=3))
    gaps, own = P.image_use_gaps(model, codec, enc6), P.caption_losses(model, codec, enc6)
    swapped = [vlm.VItem(enc6.items[j].image, it.prompt, it.answer, it.task) for it, j in zip(enc6.items, donors(6))]
    assert gaps == pytest.approx([s - t for s, t in zip(P.caption_losses(model, codec, codec.encode(swapped)), own)],
                                 abs=1e-5)
    # seeds redraw which pairs are swapped
    res1 = P.alignment_run(cfg, clean=False, seed=1, heldout_pairs=6)
    assert res1["swap_seed"] != res["swap_seed"]
    assert P.caption_pool(cfg, res1["swap_seed"])[0].answer is not None
    a, b = ([it.meta["mismatched"] for it in P.caption_pool(cfg, s)] for s in (res["swap_seed"], res1["swap_seed"]))
    assert a != b

    probe = P.perception_run(r, cfg, 4, ("ocr", "grounding"))
    assert set(probe["kinds"]) == {"ocr", "grounding"} and len(probe["true"]) == len(probe["shuffled"]) == 8
    assert probe["passed"] == (probe["pooled"]["true"] > max(probe["pooled"]["shuffled"], probe["pooled"]["blind"]) + probe["margin"])


def test_parts_are_chosen_by_the_config(tmp_path):
    """scale picks the model builder, data, evaluation and runtime; the loop is the same function."""
    import pytest

    from infir_lib import vlm
    from infir_lib.vlm import build, curriculum, hub_model, toy

    toy_cfg = vlm.as_config("configs/toy/vlm.yaml")
    parts = build.parts_for(toy_cfg, tmp_path)
    assert parts.build_model is toy.build_toy_model
    assert isinstance(parts.runtime(), curriculum.LocalRuntime)
    full_cfg = vlm.as_config("configs/full/vlm.yaml", {"output_dir": str(tmp_path)})
    parts = build.parts_for(full_cfg, tmp_path)
    assert parts.build_model is hub_model.assemble
    assert isinstance(parts.evaluation(None), curriculum.LossOnly)
    with pytest.raises(ValueError, match="schedule=curriculum"):
        build.parts_for(vlm.as_config("configs/full/vlm.yaml", {"schedule": "end_to_end"}), tmp_path)
    with pytest.raises(ValueError, match="needs output_dir"):
        vlm.run("configs/full/vlm.yaml", {"output_dir": None})  # checked before anything is built or read

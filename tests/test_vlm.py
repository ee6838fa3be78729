"""Chapter 6 (vlm): generators with ground truth, coordinates, freezing, cleaning, the full-scale plan."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from transformers import LlamaConfig

from infir_lib.vlm import contrastive as C
from infir_lib.vlm import data as D
from infir_lib.vlm.model import build_llava, set_trainable, trainable_by_part, vision_config



@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and a shared 2-core machine punishes two)."""
    from infir_lib.runtime import torch_threads

    with torch_threads(1):
        yield


# ------------------------------------------------------------------ coordinates

@pytest.mark.parametrize("size", [(64, 64), (1920, 1080), (390, 844)])
def test_box_normalisation_round_trips(size):
    w, h = size
    rng = random.Random(0)
    for _ in range(200):
        x0, x1 = sorted(rng.uniform(0, w) for _ in range(2))
        y0, y1 = sorted(rng.uniform(0, h) for _ in range(2))
        nb = D.normalize_box((x0, y0, x1, y1), w, h)
        assert all(0 <= v <= 1000 for v in nb)
        back = D.denormalize_box(nb, w, h)
        # one unit of the 1000 scale is w/1000 pixels: rounding loses at most half of it
        for a, b, scale in zip((x0, y0, x1, y1), back, (w, h, w, h)):
            assert abs(a - b) <= scale / 2000 + 1e-9
        assert D.normalize_box(back, w, h) == nb


def test_normalisation_is_per_axis_and_rejects_outside_boxes():
    assert D.normalize_box((0, 0, 1920, 1080), 1920, 1080) == (0, 0, 1000, 1000)
    assert D.normalize_point(960, 270, 1920, 1080) == (500, 250)
    assert D.denormalize_point(500, 250, 1920, 1080) == (960.0, 270.0)
    with pytest.raises(ValueError, match="not inside"):
        D.normalize_box((0, 0, 70, 10), 64, 64)
    with pytest.raises(ValueError, match="outside"):
        D.denormalize_box((0, 0, 1001, 5), 64, 64)


def test_click_parsing_and_click_in_box():
    assert D.parse_click("(312, 625)") == (312, 625)
    assert D.parse_click("click at ( 7,9 ) now") == (7, 9)
    assert D.parse_click("312, 625") is None
    assert D.inside((500, 500), (400, 400, 600, 600))
    assert not D.inside((399, 500), (400, 400, 600, 600))
    assert not D.inside(None, (0, 0, 1000, 1000))


# ------------------------------------------------------------------ generators

def test_generators_are_seeded_and_carry_ground_truth():
    a = D.make_items("grounding", 5, seed=3)
    b = D.make_items("grounding", 5, seed=3)
    c = D.make_items("grounding", 5, seed=4)
    assert [x.answer for x in a] == [x.answer for x in b]
    assert np.array_equal(np.asarray(a[0].image), np.asarray(b[0].image))
    assert [x.answer for x in a] != [x.answer for x in c]
    for it in a:  # the answer is the centre of the target box, and the box holds the target's colour
        x, y = D.parse_click(it.answer)
        assert D.inside((x, y), it.meta["box"])
        x0, y0, x1, y1 = D.denormalize_box(it.meta["box"], 64, 64)
        assert it.image.getpixel((int(x1) - 2, int(y1) - 2)) == D.GUI_COLORS[it.meta["target"]]


def test_gui_screen_boxes_do_not_overlap_and_match_pixels():
    rng = random.Random(0)
    for _ in range(20):
        s = D.make_gui_screen(rng, 64)
        boxes = [e["box"] for e in s.elements]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
        for label in s.buttons():
            x0, y0, x1, y1 = D.denormalize_box(s.box_of(label), 64, 64)
            assert s.image.getpixel((int(x1) - 2, int(y1) - 2)) == D.GUI_COLORS[label]


def test_scene_caption_matches_drawn_colours_one_object_per_grid_cell():
    rng = random.Random(1)
    for _ in range(20):
        it = D.make_scene(rng)
        names = [f"{o['color']} {o['shape']}" for o in it.meta["objects"]]
        assert it.answer == ", ".join(names) + "."  # left to right
        assert [o["col"] for o in it.meta["objects"]] == sorted({o["col"] for o in it.meta["objects"]})
        for obj in it.meta["objects"]:  # the object's colour is inside its own 16-pixel cell (one patch)
            x0, y0, x1, y1 = (int(v) for v in D.cell_box(obj["col"], obj["row"], 64, margin=0))
            pixels = {it.image.getpixel((x, y)) for x in range(x0, x1) for y in range(y0, y1)}
            assert D.COLORS[obj["color"]] in pixels


@pytest.mark.parametrize("kind", sorted(D.LEVELS))
def test_levels_are_a_dial_and_seeded(kind):
    for level in D.LEVELS[kind]:
        items = D.make_items(kind, 12, seed=0, level=level)
        assert all(it.meta["level"] == level for it in items)
        again = D.make_items(kind, 12, seed=0, level=level)
        assert [x.answer for x in items] == [x.answer for x in again]
    mixed = D.make_items(kind, 60, seed=0)
    assert {it.meta["level"] for it in mixed} == set(D.LEVELS[kind])
    with pytest.raises(ValueError, match="level"):
        D.make_items(kind, 1, seed=0, level=99)


def test_ocr_digits_fill_grid_cells_and_count_matches_level():
    for level in D.LEVELS["ocr"]:
        for it in D.make_items("ocr", 10, seed=1, level=level):
            assert len(it.answer) == level and it.answer.isdigit() and it.answer[0] != "0"
            row, col = it.meta["row"], it.meta["col"]
            for j in range(level):  # every digit's cell holds dark pixels; the cells beside the text do not
                x0, y0, x1, y1 = (int(v) for v in D.cell_box(col + j, row, 64, margin=0))
                assert min(sum(it.image.getpixel((x, y))) for x in range(x0, x1) for y in range(y0, y1)) < 100
            for c in set(range(D.GRID)) - set(range(col, col + level)):
                x0, y0, x1, y1 = (int(v) for v in D.cell_box(c, row, 64, margin=0))
                assert min(sum(it.image.getpixel((x, y))) for x in range(x0, x1) for y in range(y0, y1)) > 700


def test_gui_buttons_fill_grid_cells_below_the_title_bar():
    rng = random.Random(5)
    for _ in range(20):
        s = D.make_gui_screen(rng, 64, n_buttons=5)
        cells = [e["cell"] for e in s.elements if e["kind"] == "button"]
        assert len(set(cells)) == 5 and all(r >= 1 for _, r in cells)
        for e in s.elements:
            if e["kind"] == "button":
                x, y = D.box_center(e["box"])
                assert (x * D.GRID // 1000, y * D.GRID // 1000) == e["cell"]  # the click names the cell


def test_visual_math_answers_are_right():
    rng = random.Random(2)
    for _ in range(50):
        it = D.make_visual_math(rng)
        m = it.meta
        if m["kind"] == "chart_max":
            assert it.answer == str(max(m["values"]))
        elif m["kind"] == "chart_count":
            assert it.answer == str(len(m["values"]))
        elif m["kind"] == "area":
            assert it.answer == str(m["a"] * m["b"])
        else:
            a, b = m["text"].split("+")
            assert it.answer == str(int(a) + int(b))


def test_mismatch_pairs_marks_exactly_the_swapped_captions():
    items = D.make_items("caption", 200, seed=0)
    mixed = D.mismatch_pairs(items, 0.3, seed=0)
    flagged = [m.meta["mismatched"] for m in mixed]
    assert 0.2 * 200 <= sum(flagged) <= 0.3 * 200
    for orig, new in zip(items, mixed):
        assert (orig.answer != new.answer) == new.meta["mismatched"]
    assert all(not it.meta.get("mismatched") for it in items)  # input untouched


def test_gui_task_env_success_and_failure():
    env = D.GuiTaskEnv("send a mail", seed=0)
    screens = []
    while not env.done:
        screens.append(env.screen.buttons())
        env.step(D.box_center(env.target_box()))
    assert env.success and env.steps == 3
    assert all(t in s for t, s in zip(D.GUI_TASKS["send a mail"], screens))
    bad = D.GuiTaskEnv("send a mail", seed=0)
    while not bad.done:
        bad.step((0, 0))  # the title bar: never a button
    assert not bad.success and bad.steps == bad.max_steps
    with pytest.raises(RuntimeError):
        bad.step((0, 0))
    with pytest.raises(KeyError, match="unknown GUI task"):
        D.GuiTaskEnv("fly a kite", seed=0)


# ------------------------------------------------------------------ freezing

def _tiny_llava():
    torch.manual_seed(0)
    text = LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64,
                       tie_word_embeddings=True)
    return build_llava(vision_config(16, 1, 2, 32, 32, 16), text, image_token_id=63)


def _step(model):
    ids = torch.tensor([[1] + [63] * 4 + [5, 6, 7]])
    out = model(input_ids=ids, pixel_values=torch.randn(1, 3, 32, 32), labels=ids)
    params = [p for p in model.parameters() if p.requires_grad]
    out.loss.backward()
    opt = torch.optim.AdamW(params, lr=1e-2)
    opt.step()


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# post_layernorm sits after the layer LLaVA reads (vision_feature_layer=-1), so it never gets a gradient.
NO_GRAD = ("post_layernorm",)


@pytest.mark.parametrize("stage,expect", [("stage1", {"projector"}), ("stage2", {"vision", "projector"}),
                                          ("stage3", {"vision", "projector", "language"})])
def test_frozen_parameters_do_not_change_and_unfrozen_ones_do(stage, expect):
    model = _tiny_llava()
    counts = set_trainable(model, stage)
    assert {k for k, v in counts.items() if v > 0} == expect
    before = _snapshot(model)
    _step(model)
    part_of = lambda n: ("vision" if "vision_tower" in n else "projector" if "multi_modal_projector" in n
                         else "language")
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        if part_of(name) in expect and not any(k in name for k in NO_GRAD):
            assert changed, f"{name} should have trained in {stage}"
        elif part_of(name) not in expect:
            assert not changed, f"{name} is frozen in {stage} but changed"


def test_set_trainable_rejects_unknown_parts():
    model = _tiny_llava()
    with pytest.raises(KeyError, match="unknown part"):
        set_trainable(model, ("vision", "decoder"))
    with pytest.raises(KeyError, match="unknown stage"):
        set_trainable(model, "stage4")
    assert trainable_by_part(model)["language"] > 0  # nothing was changed by the failed call


def test_build_llava_copies_language_model_and_vision_weights():
    text = LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64,
                       tie_word_embeddings=True)
    from transformers import LlamaForCausalLM, SiglipVisionModel

    torch.manual_seed(1)
    lm = LlamaForCausalLM(text)
    vis_cfg = vision_config(16, 1, 2, 32, 32, 16)
    tower = SiglipVisionModel(vis_cfg)
    state = getattr(tower, "vision_model", tower).state_dict()
    model = build_llava(vis_cfg, text, 63, language_model=lm, vision_state=state)
    assert torch.equal(model.model.language_model.embed_tokens.weight, lm.model.embed_tokens.weight)
    own = model.model.vision_tower
    own = getattr(own, "vision_model", own)
    for k, v in state.items():
        assert torch.equal(own.state_dict()[k], v)
    with pytest.raises(ValueError, match="vision weights lack"):
        build_llava(vis_cfg, text, 63, vision_state={})


# ------------------------------------------------------------------ cleaning

def test_otsu_finds_the_valley_and_the_report_counts():
    rng = np.random.default_rng(0)
    sims = np.concatenate([rng.normal(0.8, 0.03, 800), rng.normal(0.2, 0.03, 200)])
    bad = np.r_[np.zeros(800, bool), np.ones(200, bool)]
    thr = C.choose_threshold(sims, "otsu")
    assert 0.3 < thr < 0.7
    rep = C.cleaning_report(sims, bad, thr)
    assert rep["mismatched_caught"] == 200 and rep["clean_pairs_lost"] == 0 and rep["recall"] == 1.0
    assert C.choose_threshold(sims, "fixed", value=0.5) == 0.5
    assert C.choose_threshold(sims, "quantile", quantile=0.1) == pytest.approx(np.quantile(sims, 0.1))
    with pytest.raises(ValueError, match="unknown threshold"):
        C.choose_threshold(sims, "magic")


def test_sigmoid_contrastive_training_separates_matched_from_swapped_pairs():
    from infir_lib.config import load_config
    from infir_lib.pretrain.config import PretrainConfig
    from infir_lib.pretrain.packing import get_tokenizer

    tok = get_tokenizer(load_config(PretrainConfig, "configs/toy/pretrain.yaml"))  # the toy BPE only (no LM)
    from infir_lib.vlm.model import make_processor

    proc = make_processor(tok, 64, 16).image_processor  # the chapter's grid: 4 x 4 patches, one object per patch
    items = D.mismatch_pairs(D.make_items("caption", 300, seed=0, size=64), 0.25, seed=0)
    torch.manual_seed(0)
    model = C.build_siglip(tok, 32, 1, 2, 64, 64, 16, max_text_len=20)
    untrained = C.pair_similarity(model, tok, proc, items, 20)
    bad = np.array([it.meta["mismatched"] for it in items])
    hist = C.train_siglip(model, tok, proc, items, steps=200, batch_size=48, lr=3e-3, seed=0, max_text_len=20)
    sims = C.pair_similarity(model, tok, proc, items, 20)
    assert hist[-1]["loss"] < hist[0]["loss"]
    def auc(x):  # probability that a true pair scores above a swapped one
        return float((x[~bad][:, None] > x[bad][None, :]).mean())

    print("AUC untrained", auc(untrained), "trained", auc(sims))
    assert auc(sims) > 0.7 and auc(sims) > auc(untrained) + 0.15


# ------------------------------------------------------------------ config and plan

def test_full_plan_is_about_1_6_billion_parameters():
    from infir_lib import vlm

    p = vlm.plan("configs/full/vlm.yaml")
    assert 1.55e9 < p.parameters < 1.70e9
    assert 0.40e9 < p.by_part["vision"] < 0.43e9
    assert p.image_tokens == 27 * 27
    assert p.trainable_by_stage["stage1"] == p.by_part["projector"]
    assert "1.6" in str(p) or "1.65" in str(p)


def test_toy_config_loads_and_bad_keys_name_the_file():
    from infir_lib.config import ConfigError, load_config
    from infir_lib.vlm import VLMConfig

    cfg = load_config(VLMConfig, "configs/toy/vlm.yaml")
    assert cfg.schedule == "curriculum" and cfg.image_size % cfg.patch_size == 0
    with pytest.raises(ConfigError, match="vlm.yaml"):
        load_config(VLMConfig, "configs/toy/vlm.yaml", {"stage9_steps": 3})
    with pytest.raises(ConfigError):
        load_config(VLMConfig, "configs/toy/vlm.yaml", {"stage2_mix": "{ocr: 5, holograms: 3}"})


def test_blind_baseline_counts_the_best_fixed_answer():
    from collections import Counter

    from infir_lib.vlm.perception import blind_accuracy

    items = D.make_items("grounding", 60, seed=0)
    # 3 buttons on 6 slots: a fixed click hits well under half of the targets, but more than none
    assert 0.05 < blind_accuracy(items) < 0.5
    vm = D.make_items("vmath", 60, seed=0)  # one fixed answer per question text
    best = {q: Counter(i.answer for i in vm if i.prompt == q).most_common(1)[0][1] for q in {i.prompt for i in vm}}
    assert blind_accuracy(vm) == sum(best.values()) / 60


# ------------------------------------------------------------------ perception gate

def test_shuffled_images_are_a_derangement_and_keep_the_questions():
    from infir_lib.vlm import perception as Q

    items = D.make_items("ocr", 30, seed=0)
    d = Q.donors(30, seed=3)
    assert sorted(d) == list(range(30)) and all(i != j for i, j in enumerate(d))
    sh = Q.shuffle_images(items, seed=3)
    assert [x.answer for x in sh] == [x.answer for x in items]
    assert all(s.image is items[j].image for s, j in zip(sh, d))
    with pytest.raises(ValueError):
        Q.donors(1)


def test_perception_gate_passes_a_model_that_reads_the_image_and_fails_a_blind_one():
    """The probe scores a fake model: one that answers from the image's ground truth passes; one that
    gives a fixed answer sits at the blind baseline and fails."""
    from types import SimpleNamespace

    from infir_lib.vlm import perception as Q

    items = {"ocr": D.make_items("ocr", 40, seed=0), "grounding": D.make_items("grounding", 40, seed=0)}
    truth = {id(it.image): it.answer for its in items.values() for it in its}

    class Codec:
        def encode(self, its):
            return SimpleNamespace(items=its)

    import infir_lib.vlm.train as T

    def fake_generate(model, codec, enc, **kw):
        return [model(it) for it in enc.items]

    seeing, blind = (lambda it: truth[id(it.image)]), (lambda it: "(625, 625)" if it.task == "grounding" else "1")
    orig = T.generate
    T.generate = fake_generate
    try:
        good, bad = Q.probe(seeing, Codec(), items), Q.probe(blind, Codec(), items)
    finally:
        T.generate = orig
    assert good["pooled"]["true"] == 1.0 and good["pooled"]["shuffled"] < 0.5 and good["passed"]
    assert bad["pooled"]["true"] == bad["pooled"]["shuffled"] <= bad["pooled"]["blind"] and not bad["passed"]
    assert all(g.passed for g in Q.gates(good)) and not any(g.passed for g in Q.gates(bad))
    assert len(good["true"]) == len(good["shuffled"]) == 80


def test_alignment_gate_needs_one_arm_above_the_margin_over_every_seed():
    from infir_lib.vlm import perception as Q

    def runs(clean_gaps, noisy_gaps):
        return {(True, s): {"heldout_pair_gaps": g} for s, g in enumerate(clean_gaps)} | \
               {(False, s): {"heldout_pair_gaps": g} for s, g in enumerate(noisy_gaps)}

    assert not Q.alignment_gate(runs([[0.001, 0.003]], [[0.0, 0.002]]), 0.02).passed  # both arms at the floor
    assert Q.alignment_gate(runs([[0.03, 0.05]], [[0.0, 0.001]]), 0.02).passed  # one arm aligned is enough
    # pooled over seeds: seed 1's large gaps lift the cleaned arm's mean (0.025) above the margin
    gate = Q.alignment_gate(runs([[0.0, 0.0], [0.05, 0.05]], [[0.0, 0.0], [0.0, 0.0]]), 0.02)
    assert gate.passed and "cleaned 0.025" in gate.detail and "ceiling" not in gate.detail


# ------------------------------------------------------------------ the picture in words, the tower probe

@pytest.mark.parametrize("kind", sorted(D.GENERATORS))
def test_cell_words_describe_what_each_cell_shows(kind):
    """16 one-character words per item; a cell with something drawn in it is not blank, a blank one is."""
    for it in D.make_items(kind, 30, seed=4):
        words = D.cell_words(it)
        assert len(words) == 16 and all(len(w) == 1 and w.isascii() for w in it.meta["cells"])
        colours = {}  # the background: the most common colour of the cells called blank
        for k, w in enumerate(words):
            if w == D.EMPTY:
                box = tuple(int(v) for v in D.cell_box(k % D.GRID, k // D.GRID, 64, margin=3))
                for n, c in it.image.crop(box).getcolors(1 << 16):
                    colours[c] = colours.get(c, 0) + n
        background = max(colours, key=colours.get)
        for k, w in enumerate(words):
            col, row = k % D.GRID, k // D.GRID
            x0, y0, x1, y1 = (int(v) for v in D.cell_box(col, row, 64, margin=3))
            pixels = np.asarray(it.image.crop((x0, y0, x1, y1)), dtype=int).reshape(-1, 3)
            # drawn: a tenth of the cell differs from the background by more than faint chart gridlines do
            drawn = (np.abs(pixels - np.array(background)).max(axis=1) > 40).mean() > 0.1
            if w != D.FIELD_WORD:  # a text field is an outline only: white inside, like the screen
                assert drawn == (w != D.EMPTY), (kind, k, words)


def test_cell_words_carry_the_answers():
    for it in D.make_items("ocr", 20, seed=1):
        assert D.cell_words(it).replace(D.EMPTY, "") == it.answer
    for it in D.make_items("caption", 20, seed=1):
        inverse = {v: k for k, v in D.SHAPE_WORDS.items()}
        words = [(k % D.GRID, inverse[w]) for k, w in enumerate(D.cell_words(it)) if w != D.EMPTY]
        assert ", ".join(f"{c} {s}" for _, (c, s) in sorted(words)) + "." == it.answer
    for it in D.make_items("grounding", 20, seed=1):
        k = D.cell_words(it).index(D.BUTTON_WORDS[it.meta["target"]])
        cx, cy = D.box_center(D.normalize_box(D.cell_box(k % D.GRID, k // D.GRID, 64, margin=1), 64, 64))
        assert D.parse_click(it.answer) == (cx, cy)
    for it in D.make_items("vmath", 60, seed=1):
        words = D.cell_words(it)
        if it.meta["kind"] == "area":
            assert words.count(D.UNIT_WORD) == int(it.answer)
        elif it.meta["kind"] == "chart_max":
            heights = [sum({"=": 1, "#": 2}.get(words[r * D.GRID + c], 0) for r in range(D.GRID)) for c in range(D.GRID)]
            assert max(heights) == int(it.answer)


def test_described_prompt_puts_one_word_per_image_token():
    from infir_lib.config import load_config
    from infir_lib.pretrain.config import PretrainConfig
    from infir_lib.pretrain.packing import get_tokenizer
    from infir_lib.vlm.model import make_processor
    from infir_lib.vlm.train import Codec, described_prompt_ids

    tok = get_tokenizer(load_config(PretrainConfig, "configs/toy/pretrain.yaml"))
    codec = Codec(make_processor(tok, 64, 16))
    image = tok.convert_tokens_to_ids("<image>")
    for kind in sorted(D.GENERATORS):
        it = D.make_items(kind, 1, seed=2)[0]
        with_image = codec.prompt_ids(it.prompt)
        in_words = described_prompt_ids(tok, it.prompt, D.cell_words(it))
        assert len(with_image) == len(in_words)
        slots = [k for k, t in enumerate(with_image) if t == image]
        assert len(slots) == 16
        assert [in_words[k] for k in slots] == [tok.convert_tokens_to_ids(w) for w in D.cell_words(it)]
        assert all(a == b for k, (a, b) in enumerate(zip(with_image, in_words)) if k not in slots)


def test_reading_accuracy_hands_the_language_model_the_picture_in_words(monkeypatch):
    """The LM sees each item's 16 cell words where its image tokens go: a reader that copies the
    non-blank words answers every OCR item; one that ignores them sits at the blind baseline."""
    from infir_lib.vlm import perception as Q

    tok = _toy_tokenizer()
    items = {"ocr": D.make_items("ocr", 30, seed=5)}
    ids_of = {tok.convert_tokens_to_ids(w): w for it in items["ocr"] for w in it.meta["cells"]}

    def copying(lm, tokenizer, prompts, **kw):
        return ["".join(ids_of[t] for t in p if t in ids_of and ids_of[t] != D.EMPTY) for p in prompts]

    monkeypatch.setattr(Q, "generate_text", copying)
    result = Q.reading_accuracy(None, tok, items)
    reads = result["kinds"]["ocr"]
    assert result["pooled"] == {"accuracy": reads["accuracy"], "blind": reads["blind"]}
    assert reads["accuracy"] == 1.0 and reads["n"] == 30 and reads["blind"] < 0.5
    monkeypatch.setattr(Q, "generate_text", lambda lm, tokenizer, prompts, **kw: ["1"] * len(prompts))
    assert Q.reading_accuracy(None, tok, items)["kinds"]["ocr"]["accuracy"] <= reads["blind"]


def test_tower_cell_probe_reads_cells_and_not_a_shuffled_labelling():
    from infir_lib.vlm import perception as Q
    from infir_lib.vlm.model import make_processor
    from transformers import SiglipVisionModel

    torch.manual_seed(0)
    tower = SiglipVisionModel(vision_config(32, 1, 2, 64, 64, 16)).eval()
    proc = make_processor(_toy_tokenizer(), 64, 16).image_processor
    train, test = D.make_items("ocr", 200, seed=0), D.make_items("ocr", 100, seed=1)
    real = Q.tower_cell_probe(tower, proc, train, test)
    # the same images with another item's cell words: the words no longer follow the pixels
    wrong = [D.VItem(it.image, it.prompt, it.answer, it.task, {**it.meta, "cells": train[(k + 1) % len(train)].meta["cells"]})
             for k, it in enumerate(train)]
    wrong_test = [D.VItem(it.image, it.prompt, it.answer, it.task, {**it.meta, "cells": test[(k + 1) % len(test)].meta["cells"]})
                  for k, it in enumerate(test)]
    shuffled = Q.tower_cell_probe(tower, proc, wrong, wrong_test)
    print(real, shuffled)
    assert real["accuracy_nonempty"] > 0.8 and real["accuracy"] > real["majority"] + 0.05
    assert shuffled["accuracy_nonempty"] < 0.3


def _toy_tokenizer():
    from infir_lib.config import load_config
    from infir_lib.pretrain.config import PretrainConfig
    from infir_lib.pretrain.packing import get_tokenizer

    return get_tokenizer(load_config(PretrainConfig, "configs/toy/pretrain.yaml"))

"""The full-scale RL data adapters (infir_lib/rl/hub_data.py) on hand-written stand-ins of each released
format, and full-scale runs (``rl.run`` -> ``schedule.run_schedule``, the toy runs' function) on local
Curr-ReFT-layout files with a tiny text policy. Nothing is downloaded."""

import json

import pytest
from PIL import Image

from infir_lib.rl import hub_data as H
from infir_lib.rl import rewards as R


def _png(path, color=(200, 30, 30), size=(16, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- Curr-ReFT ------------------------------------------------------------------------------------------

def test_curr_reft_stage_sets_answer_type_and_prompt(tmp_path):
    _png(tmp_path / "images" / "coco" / "a.png")
    rows = [
        {"problem": "Is there a dog?", "solution": "<answer>Yes</answer>", "task": "classify", "image": "coco/a.png"},
        {"problem": "Is x = 3?", "solution": "answer>no</answer>", "task": "math"},  # the card's own typo form
    ]
    out = H.convert_rows(rows, "curr_reft", "judge", image_root=str(tmp_path / "images"))
    assert out.total == 2 and not out.skipped
    vis, text = out.rows
    assert vis["answer_type"] == "yes_no" and vis["solution"] == "yes" and vis["image"].size == (16, 12)
    content = vis["prompt"][0]["content"]
    assert content[0] == {"type": "image"} and "<think>" in content[1]["text"] and "'yes' or 'no'" in content[1]["text"]
    assert text["solution"] == "no" and "image" not in text and isinstance(text["prompt"][0]["content"], str)
    # the reward the chapter uses agrees with the converted truth
    assert R.accuracy_reward(["<think>a</think><answer>yes</answer>"], solution=[vis["solution"]],
                             answer_type=[vis["answer_type"]]) == [1.0]

    choice = H.convert_rows([{"problem": "Which? A) cat B) dog C) cow", "solution": "<answer>B, C</answer>",
                              "task": "classify"}], "curr_reft", "choice")
    assert choice.rows[0]["answer_type"] == "choice" and choice.rows[0]["solution"] == "BC"
    assert "one or more option letters" in choice.rows[0]["prompt"][0]["content"]


def test_curr_reft_open_stage_by_task():
    rows = [
        {"problem": "Find the dog.", "solution": '<answer>{"bbox_2d": [10, 20, 50, 80]}</answer>', "task": "detection"},
        {"problem": "Name the objects.", "solution": "<answer>person, traffic light</answer>", "task": "classify"},
        {"problem": "x+1=3, x?", "solution": "<thinking>2</thinking><answer>2</answer>", "task": "math"},
    ]
    det, cls, math = H.convert_rows(rows, "curr_reft", "open").rows
    assert det["answer_type"] == "box" and json.loads(det["solution"]) == [10.0, 20.0, 50.0, 80.0]
    assert R.score_answer("[12, 21, 50, 80]", det["solution"], "box") == 1.0
    assert R.score_answer("[60, 60, 90, 90]", det["solution"], "box") == 0.0
    assert cls["answer_type"] == "labels" and R.score_answer("traffic light, person", cls["solution"], "labels") == 1.0
    assert math["answer_type"] == "math" and math["solution"] == "2"


def test_curr_reft_unusable_rows_are_skipped_and_counted(tmp_path):
    _png(tmp_path / "img" / "ok.png")
    rows = [
        {"problem": "Is it red?", "solution": "<answer>yes</answer>", "task": "math", "image": "ok.png"},
        {"problem": "Is it red?", "solution": "yes", "task": "math"},  # no answer tags
        {"problem": "Is it red?", "solution": "<answer>yes</answer>", "task": "ocr"},  # unknown task
        {"problem": "Is it red?", "solution": "<answer>yes</answer>", "task": "math", "image": "gone.png"},
        {"problem": "Is it red?", "solution": "<answer>maybe</answer>", "task": "math"},  # not yes/no
        {"problem": "", "solution": "<answer>yes</answer>", "task": "math"},
        {"problem": "Two?", "solution": "<answer>yes</answer><answer>no</answer>", "task": "math"},
    ]
    out = H.convert_rows(rows, "curr_reft", "judge", image_root=str(tmp_path / "img"))
    assert len(out.rows) == 1 and out.total == 7
    assert out.skipped == {"no single <answer> tag in solution": 1, "unknown task 'ocr'": 1,
                           "image file not found": 1, "judge answer is not yes/no": 1, "empty problem": 1,
                           "several <answer> tags in solution": 1}
    report = out.report()
    assert report["kept"] == 1 and report["rows_read"] == 7 and sum(report["skipped"].values()) == 6
    assert "kept 1 of 7" in str(out) and "unknown task 'ocr'" in str(out)


def test_curr_reft_image_row_without_root_is_an_error():
    with pytest.raises(ValueError, match="image_roots"):
        H.convert_rows([{"problem": "q", "solution": "<answer>yes</answer>", "task": "math", "image": "a.png"}],
                       "curr_reft", "judge")


def test_wrong_format_or_missing_column_names_dataset_format_and_columns():
    rows = [{"question": "q", "answer": "1"}]
    with pytest.raises(ValueError, match=r"my/set: format 'curr_reft' needs column\(s\) \['problem', 'solution', "
                                         r"'task'\]; the dataset has \['answer', 'question'\]"):
        H.convert_rows(rows, "curr_reft", "judge", dataset="my/set")
    with pytest.raises(ValueError, match=r"my/set: unknown dataset format 'currreft'; known formats"):
        H.convert_rows(rows, "currreft", "judge", dataset="my/set")
    with pytest.raises(ValueError, match="unknown dataset format"):
        H.check_formats(["curr_reft", "nope", "curr_reft"], 3)
    assert H.check_formats([], 3) == ["chapter"] * 3
    with pytest.raises(ValueError, match="answer type from the stage"):
        H.convert_rows([{"problem": "q", "solution": "<answer>1</answer>", "task": "math"}], "curr_reft", "mixed")


# --- DeepScaleR, Geo170K, geometry3k ----------------------------------------------------------------------

def test_deepscaler_text_math_rows_and_skips():
    rows = [{"problem": "What is 2+2?", "answer": "4", "solution": "2+2=4"},
            {"problem": "No answer here", "answer": "", "solution": "..."}]
    out = H.convert_rows(rows, "deepscaler", "text")
    assert [r["solution"] for r in out.rows] == ["4"] and out.skipped == {"empty answer": 1}
    row = out.rows[0]
    assert row["answer_type"] == "math" and "image" not in row and "<answer>" in row["prompt"][0]["content"]
    with pytest.raises(ValueError, match="text-only"):
        H.convert_rows(rows, "deepscaler", "image")


def _geo_row(answer_line="Answer:B", image="geoqa_plus/1.png", **extra):
    return {"image": image, "conversations": [
        {"from": "human", "value": "<image>\nAs shown, angle ABC = ? Choices: A:30° B:60° C:90°"},
        {"from": "gpt", "value": f"The angles sum to 180.\n{answer_line}"}], **extra}


def test_geo170k_image_rows_caption_rule_and_skips(tmp_path):
    root = tmp_path / "geo"
    _png(root / "geoqa_plus" / "1.png")
    rows = [_geo_row(), _geo_row("Answer: 12"), _geo_row("So it is B."), _geo_row(image="geoqa_plus/none.png")]
    out = H.convert_rows(rows, "geo170k", "image", dataset="Luckyjhg/Geo170K@qa_tuning", image_root=str(root))
    assert [(r["answer_type"], r["solution"]) for r in out.rows] == [("choice", "B"), ("math", "12")]
    assert out.skipped == {"no 'Answer:' in the gpt turn": 1, "image file not found": 1}
    text = out.rows[0]["prompt"][0]["content"][1]["text"]
    assert "<image>" not in text and text.startswith("As shown") and "Caption" not in text
    # the released set has no caption column: the caption phase is an error that says so
    with pytest.raises(ValueError, match=r"Luckyjhg/Geo170K@qa_tuning \(format geo170k\) has no 'caption' column"):
        H.convert_rows(rows, "geo170k", "caption", dataset="Luckyjhg/Geo170K@qa_tuning", image_root=str(root))
    # rows that carry one (a captioner's output added) make caption and text phases
    cap = H.convert_rows([_geo_row(caption="A triangle ABC.")], "geo170k", "caption", image_root=str(root)).rows[0]
    assert cap["prompt"][0]["content"][1]["text"].startswith("Caption: A triangle ABC.") and "image" in cap
    txt = H.convert_rows([_geo_row(caption="A triangle ABC.")], "geo170k", "text", image_root=str(root)).rows[0]
    assert txt["prompt"][0]["content"].startswith("A triangle ABC.") and "image" not in txt


def test_geometry3k_rows_from_decoded_images():
    im = Image.new("RGB", (20, 20), "white")
    rows = [{"images": [im], "problem": "<image>Find x.", "answer": "3", "id": 1, "choices": ["1", "3"],
             "ground_truth": "B"},
            {"images": [], "problem": "<image>Find y.", "answer": "4", "id": 2, "choices": [], "ground_truth": "A"}]
    out = H.convert_rows(rows, "geometry3k", "image", dataset="hiyouga/geometry3k")
    assert len(out.rows) == 1 and out.skipped == {"no image": 1}
    row = out.rows[0]
    assert row["solution"] == "3" and row["answer_type"] == "math" and row["image"].size == (20, 20)
    assert row["prompt"][0]["content"][1]["text"].startswith("Find x.")
    with pytest.raises(ValueError, match="hiyouga/geometry3k \\(format geometry3k\\) has no 'caption' column"):
        H.convert_rows(rows, "geometry3k", "caption", dataset="hiyouga/geometry3k")


def test_local_files_read_with_line_numbers(tmp_path):
    _jsonl(tmp_path / "judge" / "a" / "judge_math_train.jsonl", [{"problem": "q", "solution": "<answer>yes</answer>",
                                                                  "task": "math"}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "q"}\nnot json\n')
    out = H.load_stage_rows(str(tmp_path / "judge"), "curr_reft", "judge")
    assert len(out.rows) == 1
    out = H.load_stage_rows(str(tmp_path / "judge" / "**" / "*_train.jsonl"), "curr_reft", "judge")
    assert len(out.rows) == 1
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a JSON object"):
        H.load_stage_rows(str(bad), "curr_reft", "judge")


def test_new_fields_leave_the_toy_cache_key_alone():
    from infir_lib.rl import as_config
    from infir_lib.rl.schedule import cache_spec

    spec = cache_spec(as_config("configs/toy/rl_curr_reft.yaml"), {})["cfg"]
    assert "dataset_formats" not in spec and "image_roots" not in spec and "datasets" not in spec


# --- one full-scale run on local stand-ins ------------------------------------------------------------------

def test_run_full_on_local_curr_reft_layout(tmp_path, tiny_llama, capsys):
    """The full preset's stage chain on local Curr-ReFT-layout JSONL (text-only math rows + PNGs that a text
    policy never sees), a tiny random Llama, 1-2 GRPO steps a stage on CPU."""
    from infir_lib import rl
    from infir_lib.runtime import torch_threads

    data = tmp_path / "grpo_data" / "train"
    qs = [f"What is {a}+{b}?" for a, b in [(1, 2), (2, 3), (3, 4), (4, 5)]]
    _jsonl(data / "judge" / "math" / "judge_math_train.jsonl",
           [{"problem": q + " Is it 5?", "solution": f"<answer>{'yes' if i == 1 else 'no'}</answer>", "task": "math"}
            for i, q in enumerate(qs)] + [{"problem": "bad", "solution": "yes", "task": "math"}])
    _jsonl(data / "choice" / "math" / "choice_math_train.jsonl",
           [{"problem": q + " A) 3 B) 5 C) 7", "solution": "<answer>B</answer>", "task": "math"} for q in qs])
    _jsonl(data / "open" / "openr1_8k" / "math_math_train.jsonl",
           [{"problem": q, "solution": f"<thinking>..</thinking><answer>{2 * i + 3}</answer>", "task": "math"}
            for i, q in enumerate(qs)] + [{"problem": "q", "solution": "<answer>1</answer>", "task": "ocr"}])

    start = tiny_llama(tmp_path / "policy", [q + " <think> </think> <answer> yes no 3 5 7 </answer>" for q in qs] * 20)[0]

    out = tmp_path / "run"
    overrides = {"model_name_or_path": str(start), "output_dir": str(out), "deepspeed": None, "bf16": False,
                 "datasets": [str(data / s / "*" / "*_train.jsonl") for s in ("judge", "choice", "open")],
                 "image_roots": [], "stage_generations": [2, 2, 2], "stage_epochs": [1, 1, 1],
                 "stage_steps": [0, 1, 0], "prompts_per_step": 2, "max_completion_length": 8,
                 "learning_rate": 1e-3}
    with torch_threads(1):
        result = rl.run("configs/full/rl_curr_reft_qwen.yaml", overrides)

    for stage in ("judge", "choice", "open"):
        assert (out / stage / "config.json").exists() and (out / stage / "tokenizer_config.json").exists(), stage
    steps = {s: [h["step"] for h in result.history if h["stage"] == s] for s in ("judge", "choice", "open")}
    assert steps == {"judge": [1, 2], "choice": [1], "open": [1, 2]}  # 4 rows / 2 prompts, or the explicit cap
    saved = json.loads((out / "result.json").read_text())
    assert saved["data"]["judge"]["kept"] == 4 and saved["data"]["judge"]["skipped"] == {
        "no single <answer> tag in solution": 1}
    assert saved["data"]["open"]["skipped"] == {"unknown task 'ocr'": 1}
    assert json.loads((out / "history.json").read_text()) == result.history

    # a rerun keeps the finished stages (same settings) and trains only the one whose record is gone
    (out / "open" / "stage.json").unlink()
    capsys.readouterr()
    weights = (out / "judge" / "model.safetensors").read_bytes()
    with torch_threads(1):
        again = rl.run("configs/full/rl_curr_reft_qwen.yaml", overrides)
    assert (out / "judge" / "model.safetensors").read_bytes() == weights
    assert [h["stage"] for h in again.history] == [h["stage"] for h in result.history]
    kept = capsys.readouterr().out
    assert "stage 'judge': finished in an earlier run" in kept and "stage 'open': finished" not in kept
    with torch_threads(1):  # a changed setting retrains the stage
        changed = rl.run("configs/full/rl_curr_reft_qwen.yaml", {**overrides, "learning_rate": 2e-3})
    assert json.loads((out / "judge" / "stage.json").read_text())["key"]["args"]["learning_rate"] == 2e-3
    assert len(changed.history) == 5


def test_run_full_infi_mmr_phases_on_the_toy_llava(tmp_path, tiny_llama):
    """Infi-MMR's three phases at full-scale wiring on the book's toy LLaVA (random tiny tower + tiny Llama):
    DeepScaleR-format text rows, then Geo170K-format rows (with an added caption column) + PNGs."""
    from infir_lib import rl
    from infir_lib.rl.vision import assemble_vlm
    from infir_lib.runtime import torch_threads

    root = tmp_path / "geo_images"
    for i in range(4):
        _png(root / "geoqa_plus" / f"{i}.png", color=(60 * i, 100, 100), size=(24, 24))
    geo = [{"image": f"geoqa_plus/{i}.png", "caption": f"A triangle with an angle of {30 + i} degrees.",
            "conversations": [{"from": "human", "value": f"<image>\nWhat is the angle at vertex {i}?"},
                              {"from": "gpt", "value": f"It is marked.\nAnswer:{30 + i}"}]} for i in range(4)]
    geo.append({"image": "geoqa_plus/missing.png", "caption": "x", "conversations": geo[0]["conversations"]})
    _jsonl(tmp_path / "geo.jsonl", geo)
    _jsonl(tmp_path / "deepscaler.jsonl", [{"problem": f"What is {i}+1?", "answer": str(i + 1), "solution": ""}
                                           for i in range(4)])
    texts = ["What is the angle 1+1? <think> </think> <answer> 30 31 </answer> Caption: A triangle"] * 20
    tiny_llama(tmp_path / "lm", texts)
    origin = assemble_vlm(tmp_path / "lm", tmp_path / "vlm", None)  # no chapter-6 model: random tower
    assert origin["vision_from"] == "randomly initialised tower and projector"

    out = tmp_path / "run"
    overrides = {"model_name_or_path": str(tmp_path / "vlm"), "output_dir": str(out), "deepspeed": None, "bf16": False,
                 "datasets": [str(tmp_path / f) for f in ("deepscaler.jsonl", "geo.jsonl", "geo.jsonl")],
                 "dataset_formats": ["deepscaler", "geo170k", "geo170k"], "image_roots": ["", str(root), str(root)],
                 "stage_generations": [2, 2, 2], "stage_epochs": [1, 1, 1], "stage_steps": [1, 1, 1],
                 "prompts_per_step": 2, "max_completion_length": 8, "learning_rate": 1e-3}
    with torch_threads(1):
        result = rl.run("configs/full/rl_infi_mmr_qwen.yaml", overrides)
    assert [(h["stage"], h["step"]) for h in result.history] == [("text", 1), ("caption", 1), ("image", 1)]
    for stage in ("text", "caption", "image"):
        assert (out / stage / "config.json").exists() and (out / stage / "processor_config.json").exists(), stage
    assert result.summary["data"]["image"] == {"dataset": str(tmp_path / "geo.jsonl"), "format": "geo170k",
                                               "rows_read": 5, "kept": 4, "skipped": {"image file not found": 1}}

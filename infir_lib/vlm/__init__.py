"""Chapter 6: the multimodal small model (InfiR §4, Figure 3, Appendix E, Table 3).

    from infir_lib import vlm
    result = vlm.run("configs/toy/vlm.yaml")        # tiny SigLIP + projector + toy LM, curriculum, cached
    model, processor = result.load_model(), result.load_processor()
    print(vlm.plan("configs/full/vlm.yaml"))        # SigLIP-So400m + the 1B LM on the meta device: ~1.6 B
    vlm.run("configs/full/vlm.yaml")                # the full curriculum on Table 9 data (accelerate)

Both scales are one code path: :mod:`infir_lib.vlm.build` (the stage: ``run``, ``plan``) runs the one stage
loop of :mod:`infir_lib.vlm.curriculum` with parts chosen by ``scale``: the model builder (toy:
:func:`infir_lib.vlm.toy.build_toy_model`, the chapter's tiny tower + the toy LM; full:
:func:`infir_lib.vlm.hub_model.assemble`, hub ids or folders), the data and its collator (toy: the generators
below, :mod:`infir_lib.vlm.toy`; full: :mod:`infir_lib.vlm.hub_data`), the evaluation and the runtime
(plain PyTorch; accelerate). The dry-run is :mod:`infir_lib.vlm.planning`.

The data generators (scenes, rendered text, GUI screens, charts, geometry) are importable from here so
the RL chapter can build image prompts with ground truth.
"""

from .build import as_config, plan, run
from .config import VLMConfig
from .data import (GUI_LABELS, GUI_TASKS, GuiScreen, GuiTaskEnv, VItem, box_center, denormalize_box,
                   denormalize_point, format_click, inside, make_chart, make_geometry, make_grounding,
                   make_gui_screen, make_gui_task_step, make_items, make_mix, make_ocr, make_scene, make_scene_qa,
                   make_text_image, make_visual_math, mismatch_pairs, normalize_box, normalize_point, parse_click)
from .model import (STAGE_TRAINABLE, VLMResult, build_llava, load_processor, load_vlm, make_processor, params_by_part,
                    set_trainable, trainable_by_part)
from .toy import TowerResult, alignment_run, tower

__all__ = ["VLMConfig", "VLMResult", "TowerResult", "as_config", "run", "plan", "tower", "alignment_run", "GuiScreen",
           "GuiTaskEnv", "GUI_LABELS", "GUI_TASKS", "VItem", "make_gui_screen", "make_grounding", "make_gui_task_step",
           "make_chart", "make_geometry", "make_visual_math", "make_text_image", "make_ocr", "make_scene",
           "make_scene_qa", "make_items", "make_mix", "mismatch_pairs", "normalize_box", "denormalize_box",
           "normalize_point", "denormalize_point", "box_center", "format_click", "parse_click", "inside",
           "build_llava", "make_processor", "load_vlm", "load_processor", "set_trainable", "trainable_by_part",
           "params_by_part", "STAGE_TRAINABLE"]

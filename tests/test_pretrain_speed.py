"""The throughput options change speed, not numerics: on a tiny model on CPU the compiled step and the
fused AdamW match the plain ones, a failing compile falls back to eager, and the fused loss says why it
is unavailable here (it is a CUDA kernel)."""

import pytest
import torch

from infir_lib.models import ModelArgs, build_llama
from infir_lib.pretrain import speed
from infir_lib.pretrain.config import PretrainConfig

TINY = ModelArgs(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                 intermediate_size=64, max_position_embeddings=64, vocab_size=97)


def _model():
    torch.manual_seed(0)
    return build_llama(TINY)


@pytest.mark.slow
def test_compiled_step_matches_eager_loss_and_gradients():
    x = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(1))
    eager, comp = _model(), _model()
    step = speed.CompiledStep(comp, enabled=True)
    le = eager(input_ids=x, labels=x).loss
    lc = step(input_ids=x, labels=x).loss
    assert step.status.startswith("on"), step.status
    torch.testing.assert_close(lc, le, rtol=1e-4, atol=1e-5)
    le.backward()
    lc.backward()
    for (n, a), (_, b) in zip(eager.named_parameters(), comp.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=n)


def test_a_failing_compile_falls_back_to_eager(monkeypatch, capsys):
    model = _model()

    def broken(m):
        def fn(**kw):
            raise RuntimeError("no compiler here\nmore lines")
        return fn

    monkeypatch.setattr(torch, "compile", broken)
    step = speed.CompiledStep(model, enabled=True)
    x = torch.randint(0, 97, (1, 8))
    out = step(input_ids=x, labels=x)
    assert torch.isfinite(out.loss) and step.status.startswith("fell back to eager: RuntimeError: no compiler here")
    assert "continuing eager" in capsys.readouterr().out
    assert speed.CompiledStep(model, enabled=False).status == "off"


def test_fused_adamw_matches_the_plain_step():
    x = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(2))
    results = []
    for fused in (False, True):
        model = _model()
        cfg = PretrainConfig(fused_adamw=fused, learning_rate=1e-2)
        opt, status = speed.make_optimizer(model.parameters(), cfg, torch.device("cpu"))
        assert status.startswith("on") == fused
        for _ in range(2):
            model(input_ids=x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad()
        results.append(model.state_dict())
    for k in results[0]:
        torch.testing.assert_close(results[1][k], results[0][k], rtol=1e-5, atol=1e-6, msg=k)


def test_fused_loss_reports_why_it_is_not_applied_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("checked by the GPU benchmark")
    assert speed.apply_fused_loss(_model(), False) == "off"
    assert speed.apply_fused_loss(_model(), True).startswith("unavailable: needs CUDA")


def test_full_presets_turn_the_options_on_and_toy_leaves_them_off():
    from infir_lib.config import load_config
    for preset in ("configs/full/pretrain.yaml", "configs/full/anneal.yaml"):
        c = load_config(PretrainConfig, preset)
        assert c.fused_loss and c.compile_model and c.fused_adamw, preset
    t = load_config(PretrainConfig, "configs/toy/pretrain.yaml")
    assert not (t.fused_loss or t.compile_model or t.fused_adamw)

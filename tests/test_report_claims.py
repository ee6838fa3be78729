"""The scorecard is complete: every one of the 14 claims has a result recorded by a chapter notebook.

Runs after the notebooks have executed (``scripts/test.sh`` runs the ``after_book`` tests after the
book build), because the results are what the chapter notebooks save in the artifact cache.
"""

import pytest

from infir_lib.report import CLAIMS, claim_parts, load_claims
from infir_lib.report.scorecard import claim_markdown, format_measured, scorecard_rows
from infir_lib.report.verdicts import VERDICTS, combine_all, decide

pytestmark = pytest.mark.after_book

CLAIMS_RECORDED = load_claims()


@pytest.mark.parametrize("claim", sorted(CLAIMS))
def test_claim_has_a_recorded_result(claim):
    rec = CLAIMS_RECORDED[claim]
    assert rec is not None, (f"claim {claim} ({CLAIMS[claim]['paper']}: {CLAIMS[claim]['claim']}) has no recorded "
                             f"result: chapter {CLAIMS[claim]['chapter']}'s notebook must call "
                             "infir_lib.report.compare / record_experiment")
    assert rec["verdict"] in VERDICTS
    parts = claim_parts(rec)
    assert sorted(p.name for p in parts) == sorted(CLAIMS[claim]["parts"]), f"claim {claim}: parts differ"
    assert rec["verdict"] == combine_all(parts)
    for p in parts:  # every comparison carries an interval, its margin and the counts behind it
        if p.not_run:  # ... or was not run because a gate failed first, which the card shows
            assert p.verdict == "untestable at toy scale" and any(not g.passed for g in p.gates)
        elif not (p.gates and p.gates[0].name == "check"):
            assert p.interval.n_seeds >= 1 and p.interval.n_items >= 1 and p.margin_reason.strip()
    assert rec.get("experiment", "").strip(), f"claim {claim}: the toy experiment is not described"
    assert format_measured(rec) != "(nothing measured)"


@pytest.mark.parametrize("claim", sorted(CLAIMS))
def test_no_card_claims_more_than_its_interval(claim):
    """Each stored verdict follows from the stored interval, margin and gates, and the card shows them."""
    rec = CLAIMS_RECORDED[claim]
    if rec is None:
        pytest.skip("no result (the test above fails for it)")
    row = next(r for r in scorecard_rows(CLAIMS_RECORDED) if r["claim"] == claim)
    card = claim_markdown(row)
    for p in claim_parts(rec):
        if p.gates and p.gates[0].name == "check":
            continue
        if p.not_run:
            assert "not run" in card and all(g.detail in card for g in p.gates if not g.passed)
            continue
        declared = CLAIMS[claim]["parts"][p.name]
        assert (p.margin, p.kind) == (declared["margin"], declared["kind"]), f"claim {claim} {p.name}: not the declared margin"
        assert decide(p.interval, p.margin, p.kind) == p.rule_verdict
        gated = any(not g.passed for g in p.gates)
        assert p.verdict == ("untestable at toy scale" if gated else p.rule_verdict)
        assert f"[{p.interval.lo:+.3g}, {p.interval.hi:+.3g}]" in card

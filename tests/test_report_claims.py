"""The scorecard is complete: every one of the 14 claims has a result recorded by a chapter notebook.

Runs after the notebooks have executed (``scripts/test.sh`` runs the ``after_book`` tests after the
book build), because the results are what the chapter notebooks save in the artifact cache.
"""

import pytest

from infir_lib.report import CLAIMS, load_claims
from infir_lib.report.scorecard import format_measured

pytestmark = pytest.mark.after_book

CLAIMS_RECORDED = load_claims()


@pytest.mark.parametrize("claim", sorted(CLAIMS))
def test_claim_has_a_recorded_result(claim):
    rec = CLAIMS_RECORDED[claim]
    assert rec is not None, (f"claim {claim} ({CLAIMS[claim]['paper']}: {CLAIMS[claim]['claim']}) has no recorded "
                             f"result: chapter {CLAIMS[claim]['chapter']}'s notebook must call "
                             "infir_lib.report.record_claim / record_comparison")
    assert rec["verdict"] in ("reproduced", "not reproduced", "inconclusive")
    assert rec.get("experiment", "").strip(), f"claim {claim}: the toy experiment is not described"
    assert rec.get("measured"), f"claim {claim}: no measured numbers"
    assert format_measured(rec["measured"]).strip()

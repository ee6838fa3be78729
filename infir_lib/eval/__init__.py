"""Chapter 5: evaluating reasoning (InfiR §5.1). Stage entry points live in :mod:`infir_lib.eval.stage`."""

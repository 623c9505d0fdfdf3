"""Steps 3–5: test-pose initialisation and refinement, test rendering, metrics."""

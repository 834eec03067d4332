# The two commands a newcomer needs. Both set up .venv from the pinned files first.
.PHONY: demo test setup

setup:
	.ci/setup

# The main job end to end, offline: a loopback demo search engine, the SQLite metadata
# store and the local Beam runner; trains, gates, pushes and predicts a labelled folder.
demo: setup
	.venv/bin/keyclass demo --home ./demo-out/home --results ./demo-out/results

# Lint and every test (no network).
test:
	.ci/test

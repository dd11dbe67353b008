# The scripts in this folder are benchmarks run on demand
# (`.venv/bin/python tests/bench/poll_round.py`), not tests: pytest must not collect them.
collect_ignore_glob = ["*.py"]

"""The longest test files first: with two xdist workers (pyproject.toml addopts) each starts on one of them at
once, and the short files fill whichever worker frees up first, instead of two long files ending the run."""

LONGEST_FIRST = ("tests/test_pipeline.py", "tests/test_paper_profile.py")


def pytest_collection_modifyitems(items) -> None:
    def rank(item) -> int:
        return next((i for i, path in enumerate(LONGEST_FIRST) if item.nodeid.startswith(path)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the order within each group stays as collected

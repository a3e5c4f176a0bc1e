"""The Kinetics class-name lists shipped with the package."""

import pytest

from mvit_video.data import load_classnames


@pytest.mark.parametrize("name, count", [("kinetics400", 400), ("kinetics600", 600)])
def test_shipped_lists_are_complete_sorted_and_unique(name, count):
    names = load_classnames(name)
    assert len(names) == count == len(set(names))
    assert names == sorted(names)  # label i is the i-th name in sorted order, as in the official label maps
    assert all(n and n == n.strip() for n in names)


def test_k600_renames_k400_classes():
    k400, k600 = set(load_classnames("kinetics400")), set(load_classnames("kinetics600"))
    assert "dying hair" in k400 and "dyeing hair" in k600
    assert "hugging (not baby)" in k600 and "hugging" not in k600
    assert len(k400 & k600) == 368


def test_unknown_list_is_named():
    with pytest.raises(FileNotFoundError, match="kinetics700"):
        load_classnames("kinetics700")

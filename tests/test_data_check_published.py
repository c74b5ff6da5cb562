"""`ammpl-data check` compares class and per-split image counts with the published ones
(issue 9, item 17): fake or partial data is reported as differing, real-sized data is not."""

from __future__ import annotations

from ammpl.data.check import compare_with_published, counted
from ammpl.data.cli import main
from ammpl.data.entries import Entry
from ammpl.data.fixtures import make_fixture
from ammpl.data.published import PUBLISHED


def entries_of(sizes: dict[str, int], classes: int, tag_splits: bool = True) -> list[Entry]:
    return [
        Entry(f"/x/{split}/{i}.jpg", i % classes, "c", "f", i + 1, split if tag_splits else "")
        for split, n in sizes.items()
        for i in range(n)
    ]


def test_published_sizes_match_the_docs_table(repo_root):
    table = (repo_root / "docs" / "DATASETS.md").read_text()
    for name, published in PUBLISHED.items():
        row = next(line for line in table.splitlines() if f"| `{name}` |" in line)
        assert f"| {published.classes} |" in row
        for size in published.sizes.values():
            assert f"{size:,}" in row, (name, size)


def test_data_of_the_published_size_passes():
    for name, published in PUBLISHED.items():
        assert compare_with_published(name, published.sizes, published.classes) == [], name
    dtd = PUBLISHED["DescribableTextures"]
    assert counted("DescribableTextures", entries_of(dtd.sizes, 47)) == (dtd.sizes, 47)
    variant = entries_of({"": 7_500}, 200, tag_splits=False)
    assert compare_with_published("ImageNetA", *counted("ImageNetA", variant)) == []


def test_a_smaller_split_or_fewer_classes_differ():
    published = PUBLISHED["DescribableTextures"]
    sizes = dict(published.sizes, val=1_127)
    found = counted("DescribableTextures", entries_of(sizes, 47))
    assert compare_with_published("DescribableTextures", *found) == ["val 1,127 (published 1,128)"]
    untagged = entries_of(published.sizes, 46, tag_splits=False)  # a regenerated split
    assert compare_with_published(
        "DescribableTextures", *counted("DescribableTextures", untagged)
    ) == ["classes 46 (published 47)"]


def test_fake_data_is_reported_as_differing(tmp_path, capsys):
    make_fixture(tmp_path, ["DescribableTextures", "ImageNetA"])
    assert main(["check", "--root", str(tmp_path), "dtd", "imagenet_a"]) == 0
    out = capsys.readouterr().out
    assert (
        "differs from the published counts: train 25 (published 2,820), val 10 (published "
        "1,128), test 15 (published 1,692), classes 5 (published 47)" in out
    )
    assert "differs from the published counts: test 50 (published 7,500)" in out
    assert "2 present, 0 missing, 0 broken; 2 differ from the published counts" in out

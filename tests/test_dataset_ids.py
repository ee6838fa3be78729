"""The one dataset-id syntax (infir_lib/dataset_ids.py) that the RL and VLM full-scale data share."""

from pathlib import Path

import pytest
from PIL import Image

from infir_lib import dataset_ids as D


def test_hub_ids_name_a_config_files_or_a_split():
    assert D.parse_dataset_id("a/b") == D.DatasetId("a/b")
    assert D.parse_dataset_id("a/b:cfg@test").load_kwargs() == {"path": "a/b", "name": "cfg", "split": "test"}
    files = D.parse_dataset_id("o/n:data/*/x_train.jsonl")
    assert files.data_files == "data/*/x_train.jsonl" and files.name is None and not files.local
    assert str(D.parse_dataset_id("HuggingFaceM4/the_cauldron:textcaps")) == "HuggingFaceM4/the_cauldron:textcaps@train"
    with pytest.raises(ValueError, match="owner/name"):
        D.parse_dataset_id("Geo170K")
    with pytest.raises(ValueError, match="empty"):
        D.parse_dataset_id(":cfg")


def test_local_paths_are_local_with_or_without_a_split(tmp_path):
    folder = tmp_path / "rows@v2"  # an '@' inside an existing path is part of it
    folder.mkdir()
    assert D.parse_dataset_id(str(folder)) == D.DatasetId(str(folder)) and D.parse_dataset_id(str(folder)).local
    ds = D.parse_dataset_id(f"{tmp_path}/screens@test")
    assert ds.local and ds.path == f"{tmp_path}/screens" and ds.split == "test"
    assert D.parse_dataset_id("data/geo170k/images").local  # more than one '/': a relative path, not a repo
    assert D.parse_dataset_id(f"{tmp_path}/**/*_train.jsonl").local


def test_to_image_reads_every_cell_form(tmp_path):
    im = Image.new("L", (4, 3))
    im.save(tmp_path / "a.png")
    raw = (tmp_path / "a.png").read_bytes()
    for cell, root in ((im, None), ({"bytes": raw, "path": None}, None), ({"path": "a.png"}, tmp_path),
                       ("a.png", tmp_path), (str(tmp_path / "a.png"), None)):
        out = D.to_image(cell, root)
        assert out.mode == "RGB" and out.size == (4, 3)
    for empty in (None, {"bytes": None, "path": None}, ""):
        with pytest.raises(D.Skip, match="no image"):
            D.to_image(empty)
    with pytest.raises(FileNotFoundError):
        D.to_image("missing.png", tmp_path)


def test_image_root_local_folder_and_hub_folder(tmp_path, monkeypatch):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    Image.new("RGB", (5, 5)).save(tmp_path / "images" / "sub" / "x.png")
    (tmp_path / "images" / "bad.png").write_text("not an image")
    local = D.ImageRoot(str(tmp_path / "images"))
    assert local.open("sub/x.png").size == (5, 5)
    assert local.open("/elsewhere/images/sub/x.png").size == (5, 5)  # the authors' absolute path, re-rooted
    with pytest.raises(D.Skip, match="image file not found"):
        local.open("sub/y.png")
    with pytest.raises(D.Skip, match=r"unreadable image \("):
        local.open("bad.png")
    calls = []

    def fake_snapshot(repo, repo_type, allow_patterns):  # a stand-in of the hub: the snapshot is tmp_path
        calls.append((repo, repo_type, allow_patterns))
        return str(tmp_path)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    hub = D.ImageRoot("owner/release:images/")
    assert hub.open("sub/x.png").size == (5, 5) and hub.open("sub/x.png").size == (5, 5)
    assert calls == [("owner/release", "dataset", ["images/*"])]  # fetched once
    with pytest.raises(ValueError, match="owner/name:folder/"):
        D.ImageRoot("hf://datasets/owner/release/images").folder()
    with pytest.raises(ValueError, match="no image root"):
        D.ImageRoot(None).open("x.png")

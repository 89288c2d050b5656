import json

import pytest

from alignclip_plugins.evaluation.datasets import detect_format, read_tail

CLASSES = ["red circle", "Blue  Square", "green star"]


def test_tail_files_in_every_format(tmp_path):
    f = tmp_path / "tail.txt"
    f.write_text("# tail classes\nblue square\n\n")
    assert read_tail(f, CLASSES) == [False, True, False]
    f.write_text(json.dumps(["green star", "red circle"]))
    assert read_tail(f, CLASSES) == [True, False, True]
    f.write_text(json.dumps({"names": ["red circle", "green star"], "tail": [False, True]}))
    assert read_tail(f, CLASSES) == [False, False, True]
    vocabulary = {
        "objects": [
            {"name": "blue square", "count": 3, "tail": True},
            {"name": "dog", "count": 9, "tail": False},
        ]
    }
    f.write_text(json.dumps(vocabulary))
    assert read_tail(f, CLASSES) == [False, True, False]
    f.write_text(json.dumps({"tail": ["x"]}))
    with pytest.raises(ValueError, match="expected a list of tail class names"):
        read_tail(f, CLASSES)
    f.write_text(json.dumps({"names": ["cat"], "tail": [True]}))
    with pytest.raises(ValueError, match="none of its class names"):
        read_tail(f, CLASSES)


def test_detect_format(tmp_path, synth_data):
    assert detect_format(str(synth_data / "zeroshot")) == "webdataset"
    assert (
        detect_format(str(synth_data / "zeroshot" / "zeroshot-{000000..000001}.tar"))
        == "webdataset"
    )
    (tmp_path / "folders" / "cat").mkdir(parents=True)
    assert detect_format(str(tmp_path / "folders")) == "folder"
    (tmp_path / "cb" / "test").mkdir(parents=True)
    (tmp_path / "cb" / "test" / "nshards.txt").write_text("1\n")
    assert detect_format(str(tmp_path / "cb")) == "wds"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_format(str(tmp_path / "nothing"))
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="name the dataset with --dataset"):
        detect_format(str(tmp_path / "flat"))

import pytest

from alignclip_plugins.evaluation.prototypes import class_prompts, fill, load_templates


def test_sources_give_templates_descriptions_or_both():
    templates = ["a photo of a {}.", lambda c: f"art of the {c}"]
    desc = {"cat": ["a small furry animal"], "dog": ["a loyal animal", "it barks"]}
    assert class_prompts(["cat"], "templates", templates) == [
        ["a photo of a cat.", "art of the cat"]
    ]
    assert class_prompts(["cat", "dog"], "descriptions", descriptions=desc) == [
        ["a small furry animal"],
        ["a loyal animal", "it barks"],
    ]
    both = class_prompts(["dog"], "both", templates, desc)
    assert both == [["a photo of a dog.", "art of the dog", "a loyal animal", "it barks"]]


def test_missing_descriptions_name_the_classes_and_the_fix():
    with pytest.raises(ValueError, match=r"1 of 2 classes.*'dog'.*alignclip describe"):
        class_prompts(["cat", "dog"], "both", ["{}"], {"cat": ["x"]}, descriptions_path="d.json")
    with pytest.raises(ValueError, match="prototype source must be one of"):
        class_prompts(["cat"], "captions", ["{}"])


def test_load_templates(tmp_path):
    assert len(load_templates("openai")) == 80
    assert fill(load_templates("simple")[0], "cat") == "a photo of a cat."
    path = tmp_path / "t.txt"
    path.write_text("# mine\na sketch of a {}.\n\nthe {}\n")
    assert load_templates(path) == ["a sketch of a {}.", "the {}"]
    path.write_text("no placeholder\n")
    with pytest.raises(ValueError, match="every line must be a template"):
        load_templates(path)
    with pytest.raises(ValueError, match="not one of openai, simple"):
        load_templates(tmp_path / "absent.txt")

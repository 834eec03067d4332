"""Every source form docs/configuration.md documents works as written there, and one rule matches
class names to folder and file names everywhere: the command line's early check, the
crawler's sources and prediction truth (underscores, spaces and case do not matter)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from keyclass.components import layout
from keyclass.components.classes import ClassList
from keyclass.components.crawler import crawl as crawl_lib
from keyclass.pipeline import commands
from keyclass.pipeline.config import ConfigError, load_config
from keyclass.pipeline.predict import truth
from tests.crawler.conftest import make_cfg
from tests.fixtures import images as fx

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()

# Copied from docs/configuration.md; the first test checks they are still there, word for word.
URLS_PER_KEYWORD = "urls:lists/{keyword}.txt"
URLS_FILE_FORM = "urls:FILE"
URLS_LINE_FORM = "keyword<TAB>url"
FOLDER_FORM = "folder:DIR"
CONFIG_FOLDER = "folder:/data/extra"
CLASSES = "golden retriever,pug"  # a two-word class: where spellings differ

SPELLINGS = ["golden retriever", "golden_retriever", "Golden_Retriever", "GOLDEN RETRIEVER", "Golden  Retriever"]


def test_the_forms_are_the_readme_s():
    for form in (URLS_PER_KEYWORD, URLS_FILE_FORM, URLS_LINE_FORM, FOLDER_FORM, CONFIG_FOLDER):
        assert form in DOCS, form


def _cfg(*sources: str, **over):
    return load_config(overrides={"crawl.classes": CLASSES, "crawl.sources": list(sources), **over})


def _readme_yaml() -> dict:
    (block,) = re.findall(r"```yaml\n(.*?)```", DOCS, re.S)
    return yaml.safe_load(block)


def test_the_readme_config_block_loads_and_its_folder_is_checked(tmp_path):
    path = tmp_path / "keyclass.yaml"
    path.write_text(yaml.safe_dump(_readme_yaml()))
    cfg = load_config(path, {"crawl.classes": CLASSES})
    assert CONFIG_FOLDER in cfg.crawl.sources
    if not Path("/data/extra").is_dir():
        with pytest.raises(ConfigError, match="/data/extra is not a readable folder"):
            commands.check_sources(cfg)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_urls_per_keyword_as_documented(engine, tmp_path, monkeypatch, spelling):
    """``urls:lists/{keyword}.txt``, relative to where keyclass runs, any spelling of the class."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / f"{spelling}.txt").write_text(f"{engine.image_url('circle', 0)}\n")
    (tmp_path / "lists" / "pug.txt").write_text(f"{engine.image_url('square', 1)}\n")
    cfg = _cfg(URLS_PER_KEYWORD)
    commands.check_sources(cfg)  # the early check accepts it
    crawl_cfg = make_cfg(engine, classes=CLASSES.split(","), sources=[URLS_PER_KEYWORD], max_images_per_class=1)
    report = crawl_lib.crawl(crawl_cfg, str(tmp_path / "raw"), progress=False)
    assert {k: v["downloaded"] for k, v in report["classes"].items()} == {"golden retriever": 1, "pug": 1}


def test_urls_per_keyword_with_no_file_at_all_is_refused_early(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    with pytest.raises(ConfigError, match=r"no URL list for any class \(looked for lists/golden retriever.txt"):
        commands.check_sources(_cfg(URLS_PER_KEYWORD))


def test_urls_file_with_keyword_tab_url_lines(engine, tmp_path):
    f = tmp_path / "urls.txt"
    f.write_text(f"Golden_Retriever\t{engine.image_url('circle', 2)}\npug\t{engine.image_url('square', 3)}\n")
    source = URLS_FILE_FORM.replace("FILE", str(f))
    commands.check_sources(_cfg(source))
    crawl_cfg = make_cfg(engine, classes=CLASSES.split(","), sources=[source], max_images_per_class=1)
    report = crawl_lib.crawl(crawl_cfg, str(tmp_path / "raw"), progress=False)
    assert {k: v["downloaded"] for k, v in report["classes"].items()} == {"golden retriever": 1, "pug": 1}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_folder_form_check_crawl_and_truth_agree(tmp_path, spelling):
    root = tmp_path / "photos"
    (root / spelling).mkdir(parents=True)
    (root / "PUG").mkdir()
    (root / spelling / "1.jpg").write_bytes(fx.rgb_jpeg(1, 64, 48))
    (root / "PUG" / "2.jpg").write_bytes(fx.rgb_jpeg(2, 64, 48))
    source = FOLDER_FORM.replace("DIR", str(root))
    cfg = _cfg(source)
    commands.check_sources(cfg)
    report = crawl_lib.crawl(
        make_cfg(classes=CLASSES.split(","), sources=[source]), str(tmp_path / "raw"), progress=False
    )
    assert {k: v["downloaded"] for k, v in report["classes"].items()} == {"golden retriever": 1, "pug": 1}
    classes = ClassList(CLASSES)
    assert truth.true_label(root / spelling / "1.jpg", root, classes.names) == "golden retriever"
    assert truth.true_label(root / "PUG" / "2.jpg", root, classes.names) == "pug"
    assert classes.for_folder(spelling) == "golden retriever"
    manifest = (tmp_path / "raw" / layout.MANIFEST).read_text()
    assert f"/{spelling}/1.jpg" in manifest or f"/{spelling.replace(' ', '%20')}/1.jpg" in manifest

"""LLaVA / Video-LLaVA instruction JSON both ways: reading, problems, exporting, round trips."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.real_fixtures import REAL_FIXTURES

from db import queries
from db.store import session_scope
from engine.importers.base import ImportFailed, apply_plan
from engine.importers.llava import LlavaExportError, export_llava_json, read_llava_json
from engine.evaluation.recipe import RECIPE_PROMPT

REAL = REAL_FIXTURES / "videollava_llava_json"


def turns(*values: str) -> list[dict[str, str]]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


# Canonical: placeholders at the start of the first human turn, one a media file.
ENTRIES = [
    {"id": "dish-001", "image": "images/soup.jpg",
     "conversations": turns("<image>\nWhat is the dish in this image?", "Tomato soup")},
    {"id": "vid-001", "video": "videos/pasta.mp4",
     "conversations": turns(f"<video>\n{RECIPE_PROMPT}", "Dish: Pasta\nIngredients:\n- 1 cup "
                            "pasta\nSteps:\n1. Boil.")},
    {"id": "dish-002", "image": "images/salad.jpg",
     "conversations": turns("<image>\nWhat is this?", "A salad.", "Is it vegan?",
                            "Yes, without the cheese.")},
    {"id": "nlp-001",
     "conversations": turns("How long should I rest a steak?", "About 5 to 10 minutes.")},
]


def write_json(path: Path, entries, *, media: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2))
    for name in media:
        (path.parent / name).parent.mkdir(parents=True, exist_ok=True)
        (path.parent / name).write_bytes(b"")
    return path


@pytest.fixture
def mixed(tmp_path) -> Path:
    return write_json(tmp_path / "data" / "cooking.json", ENTRIES,
                      media=("images/soup.jpg", "images/salad.jpg", "videos/pasta.mp4"))


def test_entries_become_one_dataset_per_modality_with_the_first_pair_as_the_sample(mixed):
    plan = read_llava_json(mixed)
    assert plan.problems == []
    assert [(d.name, d.modality, d.source, d.purpose, len(d.samples)) for d in plan.datasets] == [
        ("cooking-image", "image", "llava", "train", 2),
        ("cooking-video", "video", "llava", "train", 1),
        ("cooking-text", "text", "llava", "train", 1),
    ]
    image, video, text = (d.samples for d in plan.datasets)
    soup, salad = image
    assert (soup.external_id, soup.prompt, soup.answer) == (
        "dish-001", "What is the dish in this image?", "Tomato soup")
    assert soup.media_path == str(mixed.parent.resolve() / "images" / "soup.jpg")
    # Multi-turn data keeps the whole conversation, placeholders and all.
    assert (salad.prompt, salad.answer) == ("What is this?", "A salad.")
    assert salad.meta == {"conversations": ENTRIES[2]["conversations"]}
    assert (video[0].prompt, video[0].modality, video[0].split) == (RECIPE_PROMPT, "video", "train")
    assert (text[0].external_id, text[0].media_path) == ("nlp-001", None)
    assert "cooking.json: 2 image, 1 video, 1 text samples from 4 entries" in plan.notes


def test_one_modality_takes_the_name_and_a_split_other_than_train_makes_an_eval_set(tmp_path):
    path = write_json(tmp_path / "nlp_tune.json", [ENTRIES[3]])
    [dataset] = read_llava_json(path).datasets
    assert dataset.name == "nlp_tune"
    [dataset] = read_llava_json(path, name="questions", split="test").datasets
    assert (dataset.name, dataset.purpose, dataset.samples[0].split) == ("questions", "eval",
                                                                         "test")


def test_image_and_video_folders_can_be_given_apart_as_video_llava_does(tmp_path):
    path = write_json(tmp_path / "json" / "tune.json", ENTRIES[:2])
    for name in ("images/llava/images/soup.jpg", "videos/vchat/videos/pasta.mp4",
                 "media/images/soup.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    plan = read_llava_json(path, media_root=tmp_path / "media",
                           video_root=tmp_path / "videos" / "vchat")
    assert plan.problems == []
    image, video = (d.samples[0].media_path for d in plan.datasets)
    assert image == str(tmp_path.resolve() / "media/images/soup.jpg")
    assert video == str(tmp_path.resolve() / "videos/vchat/videos/pasta.mp4")
    plan = read_llava_json(path, image_root=tmp_path / "images" / "llava",
                           video_root=tmp_path / "videos" / "vchat")
    assert plan.problems == []
    assert plan.datasets[0].root == str(tmp_path.resolve() / "images" / "llava")


def _problems(tmp_path: Path, text: str, media: tuple[str, ...] = ("a.jpg", "b.mp4",
                                                                    "c.mp4")) -> list[str]:
    path = tmp_path / "bad.json"
    path.write_text(text)
    for name in media:
        (tmp_path / name).write_bytes(b"")
    return [str(p) for p in read_llava_json(path).problems]


GOOD_IMAGE = {"id": "ok", "image": "a.jpg", "conversations": turns("<image>\nQ?", "A.")}


def _entries(*bad) -> str:
    """A list with one entry a line: the good entry on line 2, the bad one on line 3."""
    return "[\n" + ",\n".join(json.dumps(e) for e in [GOOD_IMAGE, *bad]) + "\n]\n"


@pytest.mark.parametrize(("text", "where", "expected"), [
    ('[\n  {"id": "a",\n   "conversations": [}\n]', ":3",
     "expected JSON, found expecting value at column 22"),
    ('[\n {"id": "a", "conversations": []},\n]\n', ":2",
     "expected another entry or the end of the list, found a trailing comma at column 34"),
    ('[{"id": "a"} {"id": "b"}]', ":1",
     "expected ',' or ']' after an entry, found '{\"id\": \"b\"' at column 14"),
    ('[{"id": "a"}', ":1", "expected ',' or ']' after an entry, found the end of the file"),
    ('[{"id": "a"}] []', ":1", "expected nothing after the list, found more text at column 15"),
    ('{"id": "a", "conversations": []}', ":1", "expected a JSON list of entries, found an object"),
    ("", ":1", "expected JSON, found expecting value at column 1"),
    (_entries("just a string"), ":3 [entry 1]",
     "expected an entry object, found a string 'just a string'"),
    (_entries({"id": "x", "image": "a.jpg"}), ":3 [entry 1 (id x): conversations]",
     "expected a list of {from, value} turns, found none"),
    (_entries({"id": "x", "conversations": "hi"}), ":3 [entry 1 (id x): conversations]",
     "found a string 'hi'"),
    (_entries({"id": "x", "conversations": [["human", "hi"]]}),
     ":3 [entry 1 (id x): conversations[0]]", "expected a turn {\"from\": ..., \"value\": text}"),
    (_entries({"id": "x", "conversations": [{"from": "human", "value": 3}]}),
     ":3 [entry 1 (id x): conversations[0]]", "found an object"),
    (_entries({"id": "x", "conversations": [{"from": "gpt", "value": "A."}]}),
     ":3 [entry 1 (id x): conversations[0].from]",
     "expected roles alternating human, gpt from a human turn, so 'human' here, found 'gpt'"),
    (_entries({"id": "x", "conversations": turns("Q?", "A.") + [{"from": "gpt", "value": "B"}]}),
     ":3 [entry 1 (id x): conversations[2].from]", "so 'human' here, found 'gpt'"),
    (_entries({"id": "x", "conversations": [{"from": "user", "value": "Q"},
                                            {"from": "assistant", "value": "A"}]}),
     ":3 [entry 1 (id x): conversations[0].from]", "found 'user'"),
    (_entries({"id": "x", "conversations": turns("Q?", "A.", "Q2?")}),
     ":3 [entry 1 (id x): conversations]",
     "expected the conversation to end with a gpt turn, found 3 turns ending with a human one"),
    (_entries({"id": "x", "video": ["b.mp4", "c.mp4"],
               "conversations": turns("<video>\n<video>\nQ?", "A.")}),
     ":3 [entry 1 (id x): video]",
     "expected at most 1 video (Video-LLaVA's MAX_VIDEO_LENGTH), found 2"),
    (_entries({"id": "x", "image": "a.jpg", "conversations": turns("Q?", "A.")}),
     ":3 [entry 1 (id x): conversations]",
     "expected 1 <image> placeholder(s) for 1 image(s), found 0"),
    (_entries({"id": "x", "image": "a.jpg",
               "conversations": turns("<image>\nQ?", "A.", "<image>\nQ2?", "A2.")}),
     ":3 [entry 1 (id x): conversations]", "found 2"),
    (_entries({"id": "x", "conversations": turns("<video>\nQ?", "A.")}),
     ":3 [entry 1 (id x): conversations]",
     "expected 0 <video> placeholder(s) for 0 video(s), found 1"),
    (_entries({"id": "x", "video": "b.mp4", "conversations": turns("<image>\nQ?", "A.")}),
     ":3 [entry 1 (id x): conversations]", "expected 0 <image> placeholder(s)"),
    (_entries({"id": "x", "image": "gone.jpg", "conversations": turns("<image>\nQ?", "A.")}),
     ":3 [entry 1 (id x): image]", "gone.jpg, found no such file"),
    (_entries({"id": "x", "image": [], "conversations": turns("Q?", "A.")}),
     ":3 [entry 1 (id x): image]", "expected a path or a list of paths, found none"),
    (_entries({"id": "x", "image": 7, "conversations": turns("<image>\nQ?", "A.")}),
     ":3 [entry 1 (id x): image]", "found int 7"),
    (_entries({"id": "x", "image": "a.jpg", "video": "b.mp4",
               "conversations": turns("<image>\n<video>\nQ?", "A.")}),
     ":3 [entry 1 (id x)]", "expected an image or a video, found both"),
    (_entries({"q": "What happens?", "a": "Cooking.", "video_id": "v_1"}),
     ":3 [entry 1: conversations]", "(q/a keys: raw Video-ChatGPT data, not LLaVA conversations)"),
])
def test_each_bad_entry_is_a_problem_naming_file_line_and_key(tmp_path, text, where, expected):
    problems = _problems(tmp_path, text)
    file = tmp_path.resolve() / "bad.json"
    assert any(p.startswith(f"{file}{where}: ") and expected in p for p in problems), problems


def test_bad_entries_are_left_out_so_skip_bad_imports_the_good_ones(ddft_store, tmp_path):
    text = _entries({"id": "x", "image": "gone.jpg", "conversations": turns("<image>\nQ?", "A.")})
    path = tmp_path / "bad.json"
    path.write_text(text)
    (tmp_path / "a.jpg").write_bytes(b"")
    plan = read_llava_json(path)
    assert [s.external_id for s in plan.datasets[0].samples] == ["ok"]
    with pytest.raises(ImportFailed, match="gone.jpg"):
        apply_plan(ddft_store, plan)
    [summary] = apply_plan(ddft_store, plan, skip_bad=True)
    assert (summary.dataset, summary.imported) == ("bad", 1)


def test_missing_or_repeated_ids_fall_back_to_entry_indices_and_say_so(tmp_path):
    entries = [dict(ENTRIES[3], id="same"), dict(ENTRIES[3], id="same"),
               {"conversations": ENTRIES[3]["conversations"]}]
    plan = read_llava_json(write_json(tmp_path / "q.json", entries))
    samples = plan.datasets[0].samples
    assert [s.external_id for s in samples] == ["0", "1", "2"]
    assert [s.meta.get("id") for s in samples] == ["same", "same", None]
    assert "q.json: ids missing in 1 and repeated in 2 entries, so external ids are entry " \
           "indices" in plan.notes
    # Numbers as ids (some converted data sets write them) are kept as written.
    plan = read_llava_json(write_json(tmp_path / "n.json", [dict(ENTRIES[3], id=7)]))
    assert plan.datasets[0].samples[0].external_id == "7"
    assert plan.datasets[0].samples[0].meta["id"] == 7


def test_format_quirks_are_read(tmp_path):
    entries = [
        # Placeholder after the question, as some LLaVA data writes it.
        {"id": "late", "image": "a.jpg", "conversations": turns("What is this?\n<image>", "Soup")},
        # Several images in a list, and a key ddft does not know.
        {"id": "two", "image": ["a.jpg", "sub/b.jpg"], "model": "gpt-4",
         "conversations": turns("<image>\n<image>\nCompare them.", "Same soup.")},
        {"id": "listed", "video": ["v.mp4"], "conversations": turns("<video>\nQ?", "A.")},
    ]
    path = tmp_path / "quirks.json"
    # A byte-order mark and CRLF line ends, as an editor on Windows saves it.
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(entries, indent=2).replace("\n", "\r\n")
                     .encode())
    for name in ("a.jpg", "sub/b.jpg", "v.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    plan = read_llava_json(path)
    assert plan.problems == []
    late, two = plan.datasets[0].samples
    assert late.prompt == "What is this?"
    assert (two.prompt, two.media_path) == ("Compare them.", str(tmp_path.resolve() / "a.jpg"))
    assert two.meta["media_paths"] == [str(tmp_path.resolve() / n) for n in ("a.jpg", "sub/b.jpg")]
    assert two.meta["extra"] == {"model": "gpt-4"}
    assert any("1 entries have several images" in note for note in plan.notes)
    out = tmp_path / "out.json"
    export_llava_json([*plan.datasets[0].samples, *plan.datasets[1].samples], out,
                      media_root=tmp_path)
    assert json.loads(out.read_text()) == entries


def test_read_then_export_gives_back_canonical_input(mixed, tmp_path):
    plan = read_llava_json(mixed)
    samples = [s for d in plan.datasets for s in d.samples]
    out = tmp_path / "out" / "cooking.json"
    assert export_llava_json(samples, out, media_root=mixed.parent) == 4
    by_id = {e["id"]: e for e in json.loads(out.read_text())}
    assert by_id == {e["id"]: e for e in ENTRIES}
    # One modality keeps the file's order, so the whole file comes back equal.
    images = write_json(tmp_path / "images.json", [ENTRIES[0], ENTRIES[2]],
                        media=("images/soup.jpg", "images/salad.jpg"))
    export_llava_json(read_llava_json(images).datasets[0].samples, out, media_root=tmp_path)
    assert json.loads(out.read_text()) == json.loads(images.read_text())
    assert not list(out.parent.glob(".*tmp"))
    # One entry a line, so a problem in an edited export names its entry's line.
    assert len(out.read_text().splitlines()) == 2 + 2


def test_progress_reports_entries_read(mixed):
    calls = []
    read_llava_json(mixed, progress=lambda done, total, what: calls.append((done, total, what)))
    assert calls == [(0, 4, "cooking.json"), (4, 4, "cooking.json")]


def test_the_round_trip_holds_through_the_store(ddft_store, mixed, tmp_path):
    apply_plan(ddft_store, read_llava_json(mixed))
    with session_scope(ddft_store) as session:
        samples = queries.list_samples(session, limit=None)
        assert queries.get_dataset(session, name="cooking-video").source == "llava"
    out = tmp_path / "again.json"
    assert export_llava_json(samples, out, media_root=mixed.parent) == 4
    assert sorted(json.loads(out.read_text()), key=lambda e: e["id"]) == sorted(
        ENTRIES, key=lambda e: e["id"])


def test_samples_from_other_sources_are_written_with_placeholders(tmp_path):
    video = SimpleNamespace(id=3, external_id="garlic-pasta", modality="video",
                            prompt=RECIPE_PROMPT, answer="Dish: Pasta",
                            media_path=str(tmp_path / "tasty" / "garlic-pasta" / "v.mp4"),
                            meta={"segments": []})
    text = SimpleNamespace(id=4, external_id="q1", modality="text", prompt="Why rest meat?",
                           answer="So the juices settle.", media_path=None, meta={})
    # A prompt edited after import wins over the stored conversation's first turn.
    edited = SimpleNamespace(id=5, external_id="d1", modality="image", prompt="Name the dish.",
                             answer="Soup", media_path=str(tmp_path / "d1.jpg"),
                             meta={"conversations": turns("<image>\nWhat is it?", "Soup",
                                                          "Hot?", "Yes.")})
    out = tmp_path / "export.json"
    assert export_llava_json([video, text, edited], out, media_root=tmp_path) == 3
    assert json.loads(out.read_text()) == [
        {"id": "garlic-pasta", "video": "tasty/garlic-pasta/v.mp4",
         "conversations": turns(f"<video>\n{RECIPE_PROMPT}", "Dish: Pasta")},
        {"id": "q1", "conversations": turns("Why rest meat?", "So the juices settle.")},
        {"id": "d1", "image": "d1.jpg",
         "conversations": turns("<image>\nName the dish.", "Soup", "Hot?", "Yes.")},
    ]


def test_a_media_path_outside_the_root_stops_the_export_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "export.json"
    out.write_text("old")
    outside = SimpleNamespace(id=9, external_id="far", modality="image", prompt="Q", answer="A",
                              media_path="/elsewhere/far.jpg", meta={})
    bare = SimpleNamespace(id=10, external_id="bare", modality="video", prompt="Q", answer="A",
                           media_path=None, meta={})
    with pytest.raises(LlavaExportError) as caught:
        export_llava_json([outside, bare], out, media_root=tmp_path / "media")
    assert str(caught.value.problems[0]) == (
        f"sample 9 (far) [media_path]: expected a media path under {tmp_path.resolve()}/media, "
        f"found /elsewhere/far.jpg")
    assert str(caught.value.problems[1]) == ("sample 10 (bare) [media_path]: expected a media "
                                             "path for a video sample, found none")
    assert "(and 1 more problems)" in str(caught.value)
    assert out.read_text() == "old"
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize(("name", "image", "turn_count"), [
    ("llava_instruct_sample.json", "coco/train2017/000000033471.jpg", 6),
    ("llava_finetune_custom_data_sample.json",
     "part-000001/997bb945-628d-4724-b370-b84de974a19f.jpg", 2),
])
def test_real_llava_entries_are_read_and_written_back(tmp_path, name, image, turn_count):
    path = REAL / name
    if not path.exists():
        pytest.skip("real LLaVA excerpt absent")
    (tmp_path / image).parent.mkdir(parents=True)
    (tmp_path / image).write_bytes(b"")
    plan = read_llava_json(path, media_root=tmp_path)
    assert plan.problems == []
    [dataset] = plan.datasets
    assert (dataset.name, dataset.modality) == (path.stem, "image")
    [sample] = dataset.samples
    original = json.loads(path.read_text())
    assert sample.external_id == original[0]["id"]
    assert sample.prompt == original[0]["conversations"][0]["value"].removeprefix("<image>\n")
    assert len(sample.meta["conversations"]) == turn_count
    out = tmp_path / "out.json"
    export_llava_json(dataset.samples, out, media_root=tmp_path)
    assert json.loads(out.read_text()) == original


def test_raw_video_chatgpt_data_is_told_apart(tmp_path):
    path = REAL / "VideoInstruct100K_sample.json"
    if not path.exists():
        pytest.skip("real Video-ChatGPT excerpt absent")
    [problem] = read_llava_json(path).problems
    assert "raw Video-ChatGPT data" in str(problem) and problem.line == 1

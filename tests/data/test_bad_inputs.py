"""Bad input data (issue 9, part 1): every bad image and record kind in ONE JSONL with good records.

Validation reports every bad record up front as ``file:line: field: reason``; the good ones load, and every
image that passed validation decodes to RGB with the size the record carries (so nothing fails mid-run);
``--skip_bad_records`` trains on the rest and writes exactly the bad keys; without it the trainer exits
non-zero before any training, listing every problem. The kinds and the policy for each are listed in
tests/data/bad_inputs.py (valid: converted; bad: reported).
"""

from __future__ import annotations

import json
import math
import struct
import sys
import tempfile
import zlib
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bad_inputs.py sits beside this file
from bad_inputs import (  # noqa: E402
    IMAGE_BUILDERS,
    BadData,
    launch_training,
    train_with_skip_bad_records,
    training_known_datasets,
    write_bad_data,
)
from ground_r1.boxes import crop_window  # noqa: E402
from ground_r1.data import images as images_module  # noqa: E402
from ground_r1.data.images import (  # noqa: E402
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageLoadError,
    image_size,
    input_size,
    load_image,
    max_image_pixels,
    pixel_limit_reason,
    set_max_image_pixels,
)
from ground_r1.data.records import (  # noqa: E402
    RecordValidationError,
    load_viscot_records,
    records_to_dataset,
    write_issues,
)


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> BadData:
    return write_bad_data(tmp_path_factory.mktemp("bad_inputs"))


# The 90M-pixel fixture makes PIL warn before our check refuses it: expected, not noise worth showing.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def _load(data: BadData, **kw):
    return load_viscot_records(data.path, image_root=data.root, known_datasets=training_known_datasets(), **kw)


# --------------------------------------------------------------------------------------------------------
# The loader, once, on the whole file


def test_every_bad_record_is_reported_with_file_line_field_and_reason(bad_data):
    with pytest.raises(RecordValidationError) as err:
        _load(bad_data)
    by_line: dict[int, dict[str, str]] = defaultdict(dict)
    for issue in err.value.issues:
        assert str(issue).startswith(f"{bad_data.path}:{issue.line}: {issue.field}: ")
        by_line[issue.line][issue.field] = issue.message
    assert sorted(by_line) == sorted(bad_data.bad_lines)  # every bad line, and no good one
    for line, expected in bad_data.bad_lines.items():
        case = bad_data.cases[line - 1].name
        assert sorted(by_line[line]) == sorted(expected), case  # exactly the expected fields
        for field_name, reason in expected.items():
            assert reason in by_line[line][field_name], (case, by_line[line][field_name])
    # One message lists them all (19 bad records, one problem each: fewer than the 50 listed in full).
    message = str(err.value)
    assert message.startswith(f"{len(bad_data.bad_lines)} problem(s) in {len(bad_data.bad_lines)} record(s):\n")
    assert all(str(issue) in message for issue in err.value.issues)
    assert "--skip_bad_records" in message


def test_skip_bad_records_keeps_the_good_ones_and_lists_exactly_the_bad_keys(bad_data, tmp_path):
    loaded = _load(bad_data, skip_bad_records=True)
    assert [r["line"] for r in loaded.records] == bad_data.good_lines
    assert loaded.skipped == len(bad_data.bad_lines)
    out = write_issues(loaded.issues, tmp_path / "skipped_records.jsonl")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {row["key"] for row in rows} == {bad_data.key(line) for line in bad_data.bad_lines}
    assert all(row["text"].startswith(f"{bad_data.path}:{row['line']}: {row['field']}: ") for row in rows)


def test_unusable_evidence_boxes_keep_their_record_and_are_named(bad_data):
    # The evidence box only measures the model's boxes (SPEC §3): a bad one drops out of bboxs and is named, the
    # record trains (issue 15: the release's VisCoT benchmark has ten such records). It used to be a bad record.
    loaded = _load(bad_data, skip_bad_records=True)
    kept = {r["line"]: r for r in loaded.records}
    notes = defaultdict(dict)
    for note in loaded.box_notes:
        assert str(note).startswith(f"{bad_data.path}:{note.line}: {note.field}: ")
        notes[note.line][note.field] = note.message
    assert sorted(notes) == sorted(bad_data.box_note_lines) and set(notes) <= set(kept)
    for line, expected in bad_data.box_note_lines.items():
        assert sorted(notes[line]) == sorted(expected)
        assert all(reason in notes[line][f] for f, reason in expected.items())
        assert kept[line]["bboxs"] == [] and kept[line]["box_issues"] == [f"{f}: {m}" for f, m in notes[line].items()]
    assert loaded.records_with_box_issues == len(bad_data.box_note_lines) == 5
    assert all("box_issues" not in r for line, r in kept.items() if line not in bad_data.box_note_lines)


def test_every_record_that_passes_validation_decodes_to_rgb_with_its_recorded_size(bad_data):
    # The promise that nothing fails mid-run: the rollout calls load_image on exactly these records.
    records = _load(bad_data, skip_bad_records=True).records
    for record in records:
        case = bad_data.cases[record["line"] - 1]
        image = load_image(record["image"])
        assert image.size == (record["width"], record["height"]), case.name
        case.image_check(image)
        assert (record["input_width"], record["input_height"]) == input_size(*image.size)
    by_name = {Path(r["image"]).name: r for r in records}
    # EXIF orientation 6: stored 40x20, recorded (and decoded) 20x40.
    assert (by_name["exif6.jpg"]["width"], by_name["exif6.jpg"]["height"]) == (20, 40)
    # Tiny: 10x10 is kept as is; smart_resize scales it up to min_pixels: beta = sqrt(3136/100) = 5.6,
    # ceil(10 * 5.6 / 28) * 28 = 56 -> a 56x56 input, as Qwen's processor does.
    assert (by_name["tiny.png"]["input_width"], by_name["tiny.png"]["input_height"]) == (56, 56)


# --------------------------------------------------------------------------------------------------------
# Per kind: the image check and load_image agree


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("corrupt.jpg", "not a recognised image format (corrupt file or not an image)"),
        ("truncated.png", "corrupt or truncated image data (OSError: image file is truncated"),
        ("truncated.jpg", "corrupt or truncated image data (OSError: image file is truncated"),
        ("empty.jpg", "empty file (0 bytes)"),
        ("bomb.png", "image too large for the decompression-bomb limit (178,956,970 pixels, --max_image_pixels)"),
        ("a_directory.png", "is a directory, not an image file"),
        ("no_such_image.jpg", "file not found"),
    ],
)
def test_bad_image_is_refused_by_the_check_and_by_load_image_alike(bad_data, name, reason):
    path = bad_data.root / name
    for loader in (lambda p: image_size(p, verify=True), load_image):
        with pytest.raises(ImageLoadError) as err:
            loader(path)
        assert (err.value.path, err.value.reason[: len(reason)]) == (str(path), reason)


def test_truncated_jpeg_header_parses_only_verify_catches_it(bad_data):
    # The JPEG header is intact (64x64): a header-only read cannot tell; the end-marker check can.
    path = bad_data.root / "truncated.jpg"
    assert image_size(path) == (64, 64)
    with pytest.raises(ImageLoadError, match="truncated"):
        image_size(path, verify=True)


def test_huge_headers_are_refused_without_decoding(bad_data, monkeypatch):
    # No hang, no OOM: a 20000x20000 header would decode to 400 MB (8-bit gray). Neither check nor loader may
    # decode a pixel: make decoding fail loudly.
    def no_decode(self, *args, **kwargs):
        raise AssertionError(f"decoded {self.size}")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    for loader in (image_size, load_image):
        with pytest.raises(ImageLoadError, match="decompression-bomb limit"):
            loader(bad_data.root / "bomb.png")


def test_images_between_pils_warning_and_its_error_threshold_are_read_without_a_warning(bad_data, recwarn):
    # Issue 15: PIL warns from 89,478,485 pixels and refuses from 178,956,970; our default limit is the latter,
    # so the release's genuine 8400x11200 page (94,080,000) is read. The 10000x9000 header (90,000,000) used to
    # be refused; now it passes the header check, and PIL's warning is not shown (our limit decides).
    assert max_image_pixels() == DEFAULT_MAX_IMAGE_PIXELS == 178_956_970 == 2 * 89_478_485
    assert image_size(bad_data.root / "big.png") == (10000, 9000)
    assert pixel_limit_reason(8400, 11200) is None
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    assert pixel_limit_reason(13380, 13380).startswith(
        "13380x13380 = 179,024,400 pixels exceeds the decompression-bomb limit of 178,956,970 pixels"
    )


def test_the_pixel_limit_is_read_at_call_time_and_set_by_the_flag(bad_data, monkeypatch):
    monkeypatch.setattr(images_module, "_max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    # Lowered below 64 x 48 = 3,072 (--max_image_pixels 3000), an ordinary image is refused, by the check and
    # the loader alike...
    set_max_image_pixels(3000)
    for loader in (image_size, load_image):
        with pytest.raises(ImageLoadError, match="64x48 = 3,072 pixels exceeds the decompression-bomb limit of 3,000"):
            loader(bad_data.root / "rgb.jpg")
    # ...raised above PIL's own error threshold, PIL's guard is raised with it (it would refuse the bomb first)...
    set_max_image_pixels(500_000_000)
    assert Image.MAX_IMAGE_PIXELS == 250_000_000 and image_size(bad_data.root / "bomb.png") == (20000, 20000)
    # ...and 0 removes the limit.
    set_max_image_pixels(0)
    assert max_image_pixels() is None and Image.MAX_IMAGE_PIXELS is None
    with pytest.raises(ValueError, match="max_image_pixels must be >= 0"):
        set_max_image_pixels(-1)


def test_valid_png_and_jpeg_are_verified_without_decoding(bad_data, monkeypatch):
    # The check of every training record must stay cheap: PIL's PNG getexif() alone decodes the whole image.
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self, *a, **k: pytest.fail(f"decoded {self.filename}"))
    assert image_size(bad_data.root / "gray16.png", verify=True) == (64, 48)
    assert image_size(bad_data.root / "exif6.jpg", verify=True) == (20, 40)
    assert image_size(bad_data.root / "palette_transparent.png", verify=True) == (64, 48)


def test_jpeg_with_bytes_after_its_end_marker_passes_on_the_decoders_verdict(tmp_path):
    path = tmp_path / "trailing.jpg"
    Image.new("RGB", (32, 16), (9, 9, 9)).save(path)
    path.write_bytes(path.read_bytes() + b"camera maker's trailer")
    # The end-marker test fails, so the file is decoded in full: it decodes, so it is valid.
    assert image_size(path, verify=True) == (32, 16)
    assert load_image(path).size == (32, 16)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def test_png_with_exif_after_the_pixels_reports_the_rotated_size(tmp_path):
    # PIL writes eXIf before IDAT; other writers put it after, where only a full decode finds it. The check
    # must still see orientation 6 (size 20x40), as load_image does.
    src = tmp_path / "src.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), (0, 0, 0)).save(src, exif=exif)
    chunks = _chunks(src.read_bytes())
    exif_chunk = next(c for c in chunks if c[0] == b"eXIf")
    reordered = [c for c in chunks if c[0] not in (b"eXIf", b"IEND")] + [exif_chunk, (b"IEND", b"")]
    path = tmp_path / "late_exif.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + b"".join(
            struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xFFFFFFFF) for k, d in reordered
        )
    )
    with Image.open(path) as im:
        assert "exif" not in im.info  # not seen before decoding: the case under test
    assert image_size(path, verify=True) == (20, 40)
    assert load_image(path).size == (20, 40)


def test_tiny_image_crops_span_the_whole_image():
    # Policy for images under 28 px: kept, upscaled by smart_resize (10x10 -> 56x56 input); a crop widens to
    # min(28, side) = the whole side. Box (1,1,5,5) of the 56x56 input -> original int(5*10/56) = 0, a 0-px
    # box: widened by s = 10 // 2 = 5 each side to [-5, 5], shifted inside -> [0, 10].
    window = crop_window((1, 1, 5, 5), input_size=(56, 56), original_size=(10, 10))
    assert (window.box, window.is_fallback) == ((0, 0, 10, 10), False)


# --------------------------------------------------------------------------------------------------------
# Records that used to crash the loader (now reported)


def _one(tmp_path: Path, line: str | bytes, **kw):
    path = tmp_path / "r.jsonl"
    path.write_bytes((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n")
    return load_viscot_records(path, skip_bad_records=True, **kw)


GOOD = {"image": "x.png", "problem": "q", "solution": "s", "dataset": "docvqa"}


def test_a_file_name_too_long_for_the_file_system_is_an_issue(tmp_path):
    for image in ("n" * 5000 + ".png", "/elsewhere/" + "d" * 300 + "/x.png"):
        loaded = _one(tmp_path, json.dumps({**GOOD, "image": image}), image_root=tmp_path)
        (issue,) = loaded.issues
        assert issue.field == "image" and ("File name too long" in issue.message or "not found" in issue.message)


def test_sizes_and_numbers_too_large_for_a_float_are_issues(tmp_path):
    # 10**400 overflows float(): it used to raise OverflowError out of the loader.
    loaded = _one(
        tmp_path,
        json.dumps({**GOOD, "width": 10**400, "height": 10, "bboxs": [[0, 0, 10**400, 5]]}),
        check_images=False,
    )
    assert [i.field for i in loaded.issues] == ["image"]
    assert loaded.issues[0].message.endswith(
        "pixels exceeds the decompression-bomb limit of 178,956,970 pixels (--max_image_pixels); if the image is "
        "genuine, raise that limit (or downscale the file)"
    )
    assert loaded.box_notes == []  # the record is skipped for its size: its box is not listed twice
    loaded = _one(
        tmp_path, json.dumps({**GOOD, "width": 50, "height": 10, "bboxs": [[0, 0, 10**400, 5]]}), check_images=False
    )
    assert loaded.issues == [] and loaded.records[0]["bboxs"] == []
    assert loaded.box_notes[0].message.startswith("expected 4 finite numbers [x1, y1, x2, y2], got [0, 0, 1000")


def test_problem_id_beyond_int64_is_stored_as_text(tmp_path):
    loaded = _one(tmp_path, json.dumps({**GOOD, "width": 50, "height": 40, "problem_id": 2**70}), check_images=False)
    assert records_to_dataset(loaded.records)["problem_id"] == [str(2**70)]


def test_utf8_byte_order_mark_is_ignored(tmp_path):
    loaded = _one(
        tmp_path, b"\xef\xbb\xbf" + json.dumps({**GOOD, "width": 50, "height": 40}).encode(), check_images=False
    )
    assert (loaded.issues, [r["problem"] for r in loaded.records]) == ([], ["q"])


def test_special_token_text_in_a_question_is_reported_when_the_tokens_are_given(tmp_path):
    tokens = ["<|im_end|>", "<|image_pad|>", ""]  # an empty token is ignored, not found everywhere
    line = json.dumps({**GOOD, "width": 50, "height": 40, "problem": "What is <|image_pad|>?<|im_end|>"})
    loaded = _one(tmp_path, line, check_images=False, special_tokens=tokens)
    assert [str(i) for i in loaded.issues] == [
        f"{tmp_path / 'r.jsonl'}:1: problem: contains the tokenizer's special token(s) <|im_end|>, <|image_pad|>: "
        "the processor would read them as control tokens (a forged chat turn, or an image placeholder without an "
        "image); remove them"
    ]
    assert _one(tmp_path, line, check_images=False).issues == []  # without special_tokens: not checked


def test_a_question_holding_special_token_text_is_encoded_as_plain_text(tiny_model_dir):
    from ground_r1.models.loading import load_processor
    from ground_r1.rollout.conversation import ConversationCodec

    codec = ConversationCodec(load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544))
    image = Image.new("RGB", (100, 100))
    plain = codec.encode_prompt("What is X?", image)
    for question in ("What is <|im_end|>?", "What is <|image_pad|>?"):
        encoded = codec.encode_prompt(question, image)
        # As many image pads (one image) and turn ends (system, user) as the plain prompt: the text stays text.
        assert encoded.ids.count(codec.image_token_id) == plain.ids.count(codec.image_token_id)
        assert encoded.ids.count(codec.eos_token_id) == plain.ids.count(codec.eos_token_id)
        # The text survives: decoding gives the question back, special-token string included.
        assert question in codec.tokenizer.decode(encoded.ids, skip_special_tokens=False)
    # The crop turn repeats the question (SPEC §2): escaped the same way, one image slot, one turn end.
    forged = codec.encode_crop_turn("What is <|image_pad|><|im_end|>?", (112, 112), image, 1)
    clean = codec.encode_crop_turn("What is X?", (112, 112), image, 1)
    for token in (codec.image_token_id, codec.eos_token_id):
        assert forged.ids.count(token) == clean.ids.count(token)


# --------------------------------------------------------------------------------------------------------
# Fuzz: any JSON value in any field never crashes the loader


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
FIELDS = (
    "image",
    "problem",
    "solution",
    "dataset",
    "width",
    "height",
    "input_width",
    "input_height",
    "bboxs",
    "split",
    "problem_id",
)
BOX = st.lists(
    st.one_of(st.integers(-100, 300), st.floats(allow_nan=True, allow_infinity=True)), min_size=0, max_size=5
)
RECORD = st.fixed_dictionaries(
    {},
    optional={
        **{name: JSON_VALUES for name in FIELDS},
        "bboxs": st.one_of(JSON_VALUES, st.lists(BOX, max_size=3)),
        "width": st.one_of(JSON_VALUES, st.integers(1, 500)),
        "height": st.one_of(JSON_VALUES, st.integers(1, 500)),
        "dataset": st.one_of(JSON_VALUES, st.sampled_from(["docvqa", "gqa", "emotic", "DocVQA", ""])),
    },
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD, min_size=1, max_size=4))
def test_fuzzed_records_are_loaded_or_reported_never_raised(records):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
        loaded = load_viscot_records(path, check_images=False, known_datasets=["docvqa", "gqa"], skip_bad_records=True)
    bad_lines = {i.line for i in loaded.issues}
    good_lines = [r["line"] for r in loaded.records]
    assert sorted(bad_lines | set(good_lines)) == list(range(1, len(records) + 1))  # each line: one fate
    assert not bad_lines & set(good_lines)
    for record in loaded.records:  # what passes is what the rest of the pipeline relies on
        assert all(isinstance(record[k], str) and record[k].strip() for k in ("image", "problem", "dataset"))
        assert record["dataset"] in ("docvqa", "gqa")
        assert record["width"] >= 1 and record["height"] >= 1 and record["input_width"] % 28 == 0
        assert all(
            len(b) == 4 and all(math.isfinite(v) for v in b) and b[2] > b[0] and b[3] > b[1] for b in record["bboxs"]
        )
    records_to_dataset(loaded.records)  # and it becomes a Dataset without an Arrow error


# --------------------------------------------------------------------------------------------------------
# End to end: the trainer launcher on the file (slow; one training run, shared with test_secrets_and_safety)


@pytest.mark.slow
def test_trainer_with_skip_bad_records_trains_on_the_rest_and_writes_the_skipped_list(tmp_path_factory):
    run = train_with_skip_bad_records(tmp_path_factory)
    assert run.proc.returncode == 0, run.proc.stdout[-2000:] + run.proc.stderr[-4000:]
    data, out = run.data, run.output_dir
    assert (out / "checkpoint-1" / "COMPLETE").is_file()
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s] == [1]
    assert all(math.isfinite(s["loss"]) for s in steps if "loss" in s)
    skipped = [json.loads(line) for line in (out / "skipped_records.jsonl").read_text().splitlines()]
    assert {row["key"] for row in skipped} == {data.key(line) for line in data.bad_lines}
    # The one step trained on every good record: each unusual image kind went through a rollout and its crops.
    trained = [json.loads(line) for line in (out / "question_rewards.jsonl").read_text().splitlines()]
    assert sorted(row["key"] for row in trained) == sorted(data.key(line) for line in data.good_lines)
    assert f"skipped {len(data.bad_lines)} bad training record(s)" in run.proc.stderr
    # Records with an unusable evidence box trained (above) and are listed with why (the box is only a metric).
    noted = [json.loads(line) for line in (out / "evidence_box_issues.jsonl").read_text().splitlines()]
    assert {row["key"] for row in noted} == {data.key(line) for line in data.box_note_lines}
    assert "5 training record(s) kept with unusable evidence boxes" in run.proc.stderr


@pytest.mark.slow
def test_trainer_without_the_flag_exits_before_training_listing_every_problem(tmp_path):
    data = write_bad_data(tmp_path / "data")
    out = tmp_path / "run"
    proc = launch_training(data, out, tmp_path)
    assert proc.returncode != 0
    expected = _expected_issue_texts(data)
    assert f"{len(expected)} problem(s) in {len(data.bad_lines)} record(s):" in proc.stderr
    assert all(text in proc.stderr for text in expected)
    # Before training: no model was loaded (load_model logs "loading <path> (attention=..."), nothing written.
    assert "(attention=" not in proc.stderr and not out.exists()


def _expected_issue_texts(data: BadData) -> list[str]:
    with pytest.raises(RecordValidationError) as err:
        _load(data)
    return [str(issue) for issue in err.value.issues]


def test_the_fixture_covers_every_image_kind_it_builds(bad_data):
    # Guard for the fixture itself: every built image is referenced by a record (big.png, a header-only 90M-pixel
    # PNG, only by the limit tests: it passes the header check but has no pixels to decode).
    referenced = {c.line.get("image") for c in bad_data.cases if isinstance(c.line, dict)}
    assert set(IMAGE_BUILDERS) - {"big.png"} <= referenced

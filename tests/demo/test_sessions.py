"""Session folders, uploads (copied, never moved; names sanitised; limits) and clean-up by age."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from PIL import Image

from feat2gs.demo.sessions import Session, Upload, cleanup_sessions, ingest_uploads, sanitize_name, session_id
from feat2gs.demo.settings import DemoError, Limits
from tests.demo._demo import write_photo


def _uploads(paths):
    return [Upload(p, p.name) for p in paths]


@pytest.mark.parametrize("raw, expected", [
    ("IMG 0001 (copy).JPG", "IMG_0001_copy"), ("../../etc/passwd.jpg", "passwd"), ("C:\\x\\y.png", "y"),
    ("..hidden.jpeg", "hidden"), ("ça va?.png", "ca_va"), ("....png", "png"), ("???.png", "image"),
    ("a" * 200 + ".png", "a" * 64), ("no_extension", "no_extension"),
])
def test_sanitize_name(raw, expected):
    assert sanitize_name(raw) == expected


def test_session_id_is_never_a_path():
    assert session_id("../../tmp") == "tmp"
    assert session_id(None) == "anonymous"
    assert session_id("a/b\\c") == "abc"


def test_uploads_are_copied_with_safe_unique_names(tmp_path, photos):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    session = Session(tmp_path / "sessions", "abc")
    got = ingest_uploads(_uploads(photos), session, Limits())
    names = sorted(p.name for p in got.folder.iterdir())
    assert names == ["IMG_0001_copy.jpg", "ca_va.png", "hidden.jpg"]
    assert got.folder.parent == session.dir / "uploads"
    for p, digest in before.items():  # originals untouched and still there
        assert p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest
    assert (got.folder / "ca_va.png").read_bytes() == photos[1].read_bytes()  # copied byte for byte
    again = ingest_uploads(_uploads(photos), session, Limits())
    assert again.digest == got.digest and again.folder == got.folder


def test_duplicate_names_get_suffixes(tmp_path):
    a = write_photo(tmp_path / "one" / "x.png", seed=1)
    b = write_photo(tmp_path / "two" / "x.png", seed=2)
    got = ingest_uploads(_uploads([a, b]), Session(tmp_path / "s", "id"), Limits())
    assert sorted(p.name for p in got.folder.iterdir()) == ["x.png", "x_2.png"]


@pytest.mark.parametrize("case, message", [
    ("one", "upload at least 2 photos"),
    ("many", "at most 3 photos"),
    ("empty", "the file is empty"),
    ("text", "not a readable image"),
    ("truncated", "not a readable image"),
    ("big_file", "larger than the limit"),
    ("megapixels", "megapixels"),
    ("shapes", "same shape"),
])
def test_bad_uploads_are_one_clear_message(tmp_path, case, message):
    folder = tmp_path / "in"
    good = [write_photo(folder / f"ok{i}.png", seed=i) for i in range(2)]
    limits = Limits(max_images=3, max_file_mb=0.5, max_megapixels=0.01)
    paths = {
        "one": good[:1],
        "many": good + [write_photo(folder / f"m{i}.png", seed=9 + i) for i in range(2)],
        "empty": good + [folder / "empty.jpg"],
        "text": good + [folder / "notes.jpg"],
        "truncated": good + [folder / "cut.png"],
        "big_file": good + [folder / "big.png"],
        "megapixels": good + [write_photo(folder / "wide.png", size=(200, 100))],
        "shapes": good + [write_photo(folder / "portrait.png", size=(48, 64))],
    }[case]
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    (folder / "cut.png").write_bytes(good[0].read_bytes()[:200])
    (folder / "big.png").write_bytes(os.urandom(600_000))
    session = Session(tmp_path / "sessions", "s")
    with pytest.raises(DemoError, match=message) as err:
        ingest_uploads(_uploads(paths), session, limits)
    assert "\n" not in str(err.value)
    assert not list((session.dir / "uploads").glob("*")) if (session.dir / "uploads").exists() else True


def test_other_formats_become_png_and_sizes_are_unified(tmp_path):
    folder = tmp_path / "in"
    a = write_photo(folder / "a.webp", size=(64, 48), fmt="WEBP")
    b = write_photo(folder / "b.png", size=(128, 96))
    got = ingest_uploads(_uploads([a, b]), Session(tmp_path / "s", "x"), Limits())
    sizes = {p.name: Image.open(p).size for p in got.folder.iterdir()}
    assert sizes == {"a.png": (64, 48), "b.png": (64, 48)}
    assert any("converted to PNG" in n for n in got.notes) and any("resized" in n for n in got.notes)


def test_cleanup_removes_old_sessions_but_not_busy_or_recent_ones(tmp_path):
    root = tmp_path / "sessions"
    old, busy, fresh = (Session(root, n).ensure() for n in ("old", "busy", "fresh"))
    past = time.time() - 3 * 3600
    for s in (old, busy):
        os.utime(s.dir / ".last_used", (past, past))
    hold, release = threading.Event(), threading.Event()

    def run_in_busy():
        with busy.busy():
            os.utime(busy.dir / ".last_used", (past, past))
            hold.set()
            release.wait(10)

    t = threading.Thread(target=run_in_busy)
    t.start()
    hold.wait(10)
    try:
        removed = cleanup_sessions(root, max_age_hours=1)
    finally:
        release.set()
        t.join()
    assert removed == [old.dir]
    assert busy.dir.is_dir() and fresh.dir.is_dir() and not old.dir.exists()


def test_redact_hides_the_server_path(tmp_path):
    s = Session(tmp_path / "sessions", "abc")
    assert s.redact(f"missing {s.dir}/data/x.png") == "missing <session>/data/x.png"

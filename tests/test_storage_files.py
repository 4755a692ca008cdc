"""The storage folder when a STOW-RS of an instance lands inside a delete of the same instance,
on both backends.

A delete unlinks its files after its commit, by the paths its deleted rows recorded. The same
instance stored again between that commit and the unlink must keep its new file: each write
gets a file of its own, and a folder the delete's clean-up removes while the STOW-RS places its
file is made again. A delete committed between a STOW-RS's commit and its move finds no file to
unlink: the STOW-RS, which checks after its moves that its instances are still recorded, removes
it. These tests run the steps in that order, as the server and the CLI run them
(``store_parts``, then ``Store.delete_*``, then ``storage.remove_after_commit``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pydicom
import pytest
from conftest import PYDICOM_FILES
from pydicom.uid import UID, generate_uid

from repository import Store, storage
from repository.image_id import FILE_PREFIX
from repository.web.stow import Part, store_parts


def _dataset(comment: str) -> pydicom.Dataset:
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = UID("1.2.826.0.1.7"), UID("1.2.826.0.1.7.1")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.7.1.1")
    ds.ImageComments = comment
    return ds


def _stow(store: Store, folder: Path, ds: pydicom.Dataset) -> None:
    """What ``POST /studies`` does with one received part."""
    part = folder / storage.INCOMING / f"{secrets.token_hex(6)}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(part, enforce_file_format=True)
    (outcome,) = store_parts(store, [Part(part)], folder, None)
    assert outcome.reason is None, outcome.message


def _recorded_file(store: Store, ds: pydicom.Dataset) -> Path:
    found = store.get_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert found is not None and found.image_id.startswith(FILE_PREFIX)
    return Path(found.image_id.removeprefix(FILE_PREFIX))


def _in_step(store: Store, folder: Path) -> storage.StorageReport:
    with store.engine.connect() as conn:
        return storage.check(conn, folder, grace=0)


def test_a_stow_between_a_deletes_commit_and_its_unlink_keeps_its_file(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "storage"
    first = _dataset("first")
    _stow(store, folder, first)
    old = _recorded_file(store, first)
    deleted = store.delete_study(first.StudyInstanceUID)  # committed; its unlink is still to come
    assert deleted.files == (str(old),)
    second = _dataset("second")
    _stow(store, folder, second)  # the same instance, stored again meanwhile
    new = _recorded_file(store, second)
    assert storage.remove_after_commit(deleted.files, folder) == 1  # the delete's late unlink
    assert not old.exists()
    assert new.exists() and pydicom.dcmread(new).ImageComments == "second"
    report = _in_step(store, folder)
    assert report.clean and report.files == 1


def test_a_deletes_folder_clean_up_during_a_stow_does_not_lose_its_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "storage"
    first = _dataset("first")
    _stow(store, folder, first)
    deleted = store.delete_instances(
        first.StudyInstanceUID, first.SeriesInstanceUID, [first.SOPInstanceUID]
    )
    move, cleaned = os.replace, list[int]()

    def delete_unlinks_first(source: str | Path, target: str | Path) -> None:
        # The delete's unlink (and removal of the folders it empties) lands after the STOW
        # made the series folder and before it moves its file in.
        if not cleaned:
            cleaned.append(storage.remove_after_commit(deleted.files, folder))
        move(source, target)

    monkeypatch.setattr(os, "replace", delete_unlinks_first)
    second = _dataset("second")
    _stow(store, folder, second)
    monkeypatch.undo()
    assert cleaned == [1]
    new = _recorded_file(store, second)
    assert new.exists() and pydicom.dcmread(new).ImageComments == "second"
    assert _in_step(store, folder).clean


def test_a_delete_between_a_stows_commit_and_its_move_leaves_no_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "storage"
    ds = _dataset("first")
    move, done = os.replace, list[int]()

    def delete_commits_and_unlinks_first(source: str | Path, target: str | Path) -> None:
        # The DELETE commits and unlinks what its rows recorded (not there yet) after the
        # STOW's commit and before it moves its file in.
        deleted = store.delete_study(ds.StudyInstanceUID)
        done.append(storage.remove_after_commit(deleted.files, folder))
        move(source, target)

    monkeypatch.setattr(os, "replace", delete_commits_and_unlinks_first)
    _stow(store, folder, ds)
    monkeypatch.undo()
    assert done == [0]  # the delete found no file to unlink
    assert store.get_study(ds.StudyInstanceUID) is None
    assert not [p for p in folder.rglob("*.dcm")]  # the STOW removed the file it moved in
    assert _in_step(store, folder).clean


def test_each_write_of_an_instance_gets_a_path_of_its_own(tmp_path: Path) -> None:
    uids = (generate_uid(), generate_uid(), generate_uid())
    paths = {storage.instance_path(tmp_path, *uids) for _ in range(100)}
    assert len(paths) == 100
    assert all(p.parent == tmp_path / uids[0] / uids[1] for p in paths)
    assert all(p.name.startswith(f"{uids[2]}-") and p.suffix == ".dcm" for p in paths)


def test_an_instance_recorded_without_its_file_gets_it_when_sent_again(
    store: Store, tmp_path: Path
) -> None:
    # As after a commit whose answer was lost and that the client gave up on: the instance is
    # recorded as a file in storage that is not there; sending it again puts the file there.
    folder = tmp_path / "storage"
    ds = _dataset("sent")
    _stow(store, folder, ds)
    recorded = _recorded_file(store, ds)
    recorded.unlink()
    assert _in_step(store, folder).missing
    _stow(store, folder, _dataset("sent"))  # already present: the instance is not added again
    assert _recorded_file(store, ds) == recorded and recorded.exists()
    assert pydicom.dcmread(recorded).SOPInstanceUID == ds.SOPInstanceUID
    assert _in_step(store, folder).clean
    assert len(list((folder / ds.StudyInstanceUID).rglob("*.dcm"))) == 1

"""Our display sets equal OHIF 3.13.2's on pydicom's and pydicom-data's test files and on the
synthetic series of ``ohif_synthetic.py`` (one study per OHIF rule), on both
databases, apart from the deliberate differences (see ``ohif_corpus.comparable``).

OHIF's side is ``tests/ohif_reference/expected.json``, made by running OHIF's own
DisplaySetService and handlers under Node over the same naturalized metadata
(``tests/ohif_reference/make_expected.py``); this test does not need Node or OHIF.
"""

from __future__ import annotations

from pathlib import Path

import ohif_corpus

from repository import Store
from repository.ingest import ingest


def test_display_sets_equal_ohifs_on_the_test_corpus(store: Store, tmp_path: Path) -> None:
    expected = ohif_corpus.load_expected()
    studies = ohif_corpus.ingest_corpus(store, tmp_path)
    assert sorted(expected) == studies  # the same corpus as when expected.json was made
    differences = {}
    for study_uid in studies:
        mine, theirs = ohif_corpus.comparable(
            store.get_display_sets(study_uid), expected[study_uid]
        )
        if mine != theirs:
            differences[study_uid] = {"ours": mine, "ohif": theirs}
    assert differences == {}
    shown = sum(len(s["displaySets"]) for s in expected.values())
    assert shown > 40  # the corpus really was compared


def test_where_ohif_throws_we_show_the_series_as_unsupported(store: Store, tmp_path: Path) -> None:
    # OHIF's dicom-rt handler throws on pydicom's rtstruct.dcm (no ContourImageSequence); the
    # study still gets its other display sets here and the structure set says why it is shown
    # as unsupported
    expected = ohif_corpus.load_expected()
    ohif_corpus.ingest_corpus(store, tmp_path)
    failures = [(uid, e) for uid, s in expected.items() for e in s["errors"]]
    assert failures, "the corpus has a series OHIF's code throws on"
    for study_uid, error in failures:
        sets = store.get_display_sets(study_uid)
        [unsupported] = [ds for ds in sets if ds.series_instance_uid == error["SeriesInstanceUID"]]
        assert unsupported.is_unsupported and "failed" in unsupported.extras["reason"]


def test_files_sharing_a_sop_instance_uid_with_the_corpus_equal_ohifs_alone(store: Store) -> None:
    """rtdose_rle.dcm (see ``ohif_corpus.ALONE``): an RT Dose whose SliceThickness is an empty
    UN element. OHIF's hasPixelMeasurements needs PixelSpacing and a truthy SliceThickness or
    SpacingBetweenFrames; dcmjs gives SliceThickness null, as pydicom reads it (DS, empty), so
    OHIF does not reconstruct it, and neither do we."""
    expected = ohif_corpus.load_expected(ohif_corpus.EXPECTED_ALONE)
    ingest(store, [ohif_corpus.alone_path(name) for name in ohif_corpus.ALONE], workers=1)
    assert sorted(expected) == store.get_study_instance_uids()
    for study_uid, theirs in expected.items():
        mine, ohif = ohif_corpus.comparable(store.get_display_sets(study_uid), theirs)
        assert mine == ohif
    [rt_dose] = store.get_display_sets("1.2.999.999.99.9.9999.8888")
    assert rt_dose.is_multi_frame and not rt_dose.is_reconstructable

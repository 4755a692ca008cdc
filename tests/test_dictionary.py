"""The dictionary lookups the file reader makes without importing pydicom give what pydicom's
own give, for every tag of its dictionaries; the few constants copied from pydicom are its own.

If pydicom changes a dictionary or a constant, these tests fail before a file is stored
differently from the way pydicom reads it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydicom import datadict, filewriter, tag, uid, valuerep
from pydicom._private_dict import private_dictionaries
from pydicom.charset import convert_encodings
from pydicom.values import convert_string

from repository.normalize import dictionary
from repository.normalize.decode import codec_of
from repository.normalize.parse import PLAIN_CHARSETS


def outcome(lookup: Callable[..., Any], *args: Any) -> Any:
    """What ``lookup(*args)`` gives: its value, or the type of error it raises."""
    try:
        return lookup(*args)
    except (KeyError, ValueError) as error:
        return type(error)


def public_tags() -> Iterator[int]:
    """Every tag of the dictionary, repeating groups in several groups, group lengths,
    private and unknown tags."""
    yield from datadict.DicomDictionary
    for mask in datadict.RepeatersDictionary:
        for digit in "0129AEF":
            yield int(mask.replace("x", digit), 16)
    for group in (0x0008, 0x0009, 0x0010, 0x6000, 0x6001, 0x7FE0, 0xFFFE):
        for element in (0x0000, 0x0001, 0x0010, 0x1000, 0xFFFF):
            yield group << 16 | element


def test_public_lookups_are_pydicoms_for_every_tag() -> None:
    for number in public_tags():
        assert outcome(dictionary.get_entry, number) == outcome(datadict.get_entry, number)
        assert outcome(dictionary.dictionary_VR, number) == outcome(datadict.dictionary_VR, number)
        assert outcome(dictionary.dictionary_VR, number) == outcome(
            datadict._dictionary_vr_fast, number
        )
        assert dictionary.keyword_for_tag(number) == datadict.keyword_for_tag(number)
        assert dictionary.mask_match(number) == datadict.mask_match(number)


def test_keyword_lookups_are_pydicoms_for_every_keyword() -> None:
    keywords = [entry[4] for entry in datadict.DicomDictionary.values()]
    for keyword in [*keywords, "", "NotAKeyword", "OverlayRows", "00100010", "7FE00010"]:
        assert dictionary.tag_for_keyword(keyword) == datadict.tag_for_keyword(keyword)
        if keyword:
            found = outcome(dictionary.dictionary_VR, keyword)
            assert found == outcome(datadict.dictionary_VR, keyword), keyword


def private_cases() -> Iterator[tuple[int, str]]:
    """Each private dictionary key as tags (its ``xx`` block bytes filled in several ways),
    under its own creator and another's."""
    others = iter(private_dictionaries)
    for creator, entries in private_dictionaries.items():
        other = next(others)
        for key in entries:
            for digit in "01F":
                number = int(key.replace("x", digit), 16)
                yield number, creator
                yield number, other
    yield 0x00091010, "no such creator"


def test_private_lookups_are_pydicoms_for_every_entry() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for number, creator in private_cases():
            ours = outcome(dictionary.private_dictionary_VR, number, creator)
            assert ours == outcome(datadict.private_dictionary_VR, number, creator), (
                f"{number:08X}",
                creator,
            )


def test_the_dictionaries_are_pydicoms_own() -> None:
    # pydicom imported first (as here): the reader uses its dictionaries, not a copy
    assert dictionary.DicomDictionary is datadict.DicomDictionary
    assert dictionary.RepeatersDictionary is datadict.RepeatersDictionary
    assert dictionary._private_dictionaries() is datadict.private_dictionaries


def test_the_copied_constants_are_pydicoms() -> None:
    assert set(filewriter._AMBIGUOUS_US_SS_TAGS) == dictionary.AMBIGUOUS_US_SS_TAGS
    assert set(tag._LUT_DESCRIPTOR_TAGS) == dictionary.LUT_DESCRIPTOR_TAGS
    assert {str(vr) for vr in valuerep.VR if len(vr) == 2} == dictionary.VRS
    assert {str(vr) for vr in valuerep.EXPLICIT_VR_LENGTH_32} == dictionary.EXPLICIT_VR_LENGTH_32
    assert uid.ImplicitVRLittleEndian == dictionary.IMPLICIT_VR_LITTLE_ENDIAN
    assert uid.ExplicitVRBigEndian == dictionary.EXPLICIT_VR_BIG_ENDIAN
    assert uid.DeflatedExplicitVRLittleEndian == dictionary.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN


@pytest.mark.parametrize("term", sorted(PLAIN_CHARSETS))
@pytest.mark.parametrize("padding", [b"", b" ", b"\x00"])
def test_common_character_sets_give_the_codec_pydicom_finds(term: str, padding: bytes) -> None:
    encodings = convert_encodings(convert_string(term.encode() + padding, True))
    assert codec_of(encodings) == PLAIN_CHARSETS[term]


def test_transfer_syntaxes_registered_with_pydicom_are_seen() -> None:
    private = uid.UID("1.2.3.4.5.6.7")
    uid.register_transfer_syntax(private, implicit_vr=False, little_endian=True)
    try:
        assert private in dictionary.private_transfer_syntaxes()
    finally:
        uid.PrivateTransferSyntaxes.remove(private)
    assert private not in dictionary.private_transfer_syntaxes()

"""``dicom-repo ingest`` starts without pydicom: the store and the file reader import neither
pydicom nor numpy (a third of the start-up), until a file is read that the reader leaves to
pydicom. Each check runs in a fresh interpreter; the files are found there without pydicom.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FIND_FILES = """
import importlib.util, json, os, sys
folder = os.path.join(importlib.util.find_spec("pydicom").submodule_search_locations[0],
                      "data", "test_files")
"""
READ = (
    FIND_FILES
    + """
import repository.store, repository.ingest, repository.reading
from repository.reading import read_file
loaded = lambda: {name: name in sys.modules for name in ("pydicom", "numpy")}
result = {"imported": loaded()}
for name in sys.argv[1:]:
    inst = read_file(os.path.join(folder, name))
    result[name] = [inst.sop_instance_uid, loaded()]
print(json.dumps(result))
"""
)
BEFORE_PYDICOM = """
import json
from repository.normalize import dictionary
dictionary.dictionary_VR(0x00100010), dictionary._private_dictionaries()
import pydicom._dicom_dict, pydicom._private_dict
from pydicom import datadict
print(json.dumps([pydicom._dicom_dict.DicomDictionary == dictionary.DicomDictionary,
                  datadict.private_dictionaries == dictionary._private_dictionaries()]))
"""
NONE = {"pydicom": False, "numpy": False}


def run(code: str, *args: str) -> object:
    """What ``code`` printed (JSON) in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "modules",
    [
        "repository.store, repository.ingest, repository.reading, repository.cli",
        "repository.normalize.reader, repository.normalize.parse, repository.normalize.decode",
        "repository.normalize.values, repository.normalize.instance, repository.serialized",
        "repository.completeness, repository.validation, repository.models, repository.adds",
        "repository.commands, repository.normalize.naturalized, repository.normalize.dicom_json",
    ],
)
def test_the_store_and_the_reader_import_no_pydicom(modules: str) -> None:
    code = f"import json, sys\nimport {modules}\nprint(json.dumps('pydicom' in sys.modules))"
    assert run(code) is False


def test_reading_a_file_the_reader_takes_imports_no_pydicom() -> None:
    result = run(READ, "CT_small.dcm", "MR_small.dcm")
    assert result == {
        "imported": NONE,
        "CT_small.dcm": ["1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", NONE],
        "MR_small.dcm": ["1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457", NONE],
    }


def test_a_file_left_to_pydicom_is_read_and_imports_it() -> None:
    result = run(READ, "CT_small.dcm", "MR_small_bigendian.dcm")
    assert isinstance(result, dict)
    assert result["CT_small.dcm"][1] == NONE
    uid, loaded = result["MR_small_bigendian.dcm"]
    assert uid == "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"
    assert loaded == {"pydicom": True, "numpy": True}


def test_pydicom_imported_after_the_reader_is_whole_and_holds_the_same_dictionaries() -> None:
    assert run(BEFORE_PYDICOM) == [True, True]

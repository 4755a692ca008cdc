"""Test support for code built on the repository: a pytest plugin and a study factory.

The plugin (registered through the ``pytest11`` entry point, so installing the package is
enough) provides the ``dicom_store`` and ``dicom_factory`` fixtures; see :mod:`.plugin`.
"""

from .factory import DERIVED, IMAGE_CLASSES, DicomFactory

__all__ = ["DERIVED", "IMAGE_CLASSES", "DicomFactory"]

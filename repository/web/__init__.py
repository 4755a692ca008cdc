"""DICOMweb server and the OHIF Viewer served next to it."""

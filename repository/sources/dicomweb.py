"""Fill the store from a DICOMweb server, as OHIF's DICOMweb data source does (lazy path).

For every study: a QIDO-RS series search, then per series a WADO-RS metadata request; the
series summary (:meth:`~repository.Store.add_series_metadata`) and its instances
(:meth:`~repository.Store.add_instances`) are committed together, one transaction per series,
in the series list named after the server. A pull that stops half-way keeps the series it
committed, and running it again adds only what is missing (adds are idempotent).

Instances get OHIF's ``wadors:<wadoRoot>/studies/S/series/Se/instances/I/frames/1`` imageIds and
keep bulk data (pixel data, ...) as ``BulkDataURI`` references into the server; relative
references are made absolute the way OHIF resolves them (relative to the series URL).

Credentials (``user:password@`` in the URL, or headers such as ``Authorization``) are sent with
every request and nowhere else: they are never stored, and never part of a name, a message or
a ``repr``.

>>> source = DicomWebSource("http://localhost:8042/dicom-web")
>>> report = source.pull(store, studies=["1.2.3"])
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from dicomweb_client import DICOMwebClient

from ..errors import InvalidInputError, InvalidUIDError
from ..image_id import wadors_image_id
from ..models import AddResult
from ..store import Store
from ..validation import check_data_source, check_uid
from .endpoint import data_source_name, redact_url, split_root
from .pull import PullError, PullProgress, PullReport, PullRun

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for a server to connect or to send data, per request."""

PAGE_SIZE = 500
"""QIDO-RS results asked for per request (``limit``); pages follow with ``offset``."""

STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"

_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>:?\s*")

DicomJson = dict[str, Any]


# --------------------------------------------------------------------------------- helpers


def _first(ds: Mapping[str, Any], tag: str) -> Any:
    elem = ds.get(tag)
    if not isinstance(elem, Mapping):
        return None
    values = elem.get("Value")
    return values[0] if isinstance(values, list) and values else None


def _describe_connection_error(error: requests.ConnectionError) -> str:
    reason: Any = error.args[0] if error.args else error
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    text = _OBJECT_REPR.sub("", str(reason)).strip()
    return text or type(error).__name__


# --------------------------------------------------------------------------------- the source


class DicomWebSource:
    """A DICOMweb server to pull studies from, through ``dicomweb-client``.

    ``url`` is the server's DICOMweb root (QIDO-RS, and WADO-RS unless ``wado_root`` differs),
    e.g. ``http://localhost:8042/dicom-web``. ``name`` is the data source, i.e. the series list
    the pulled series are filed under (default :func:`data_source_name` of ``url``).
    ``headers`` are sent with every request; ``user:password@`` in a URL becomes HTTP basic
    authentication. ``timeout`` bounds each request's connect and read, in seconds; a request
    that times out, loses its connection or is answered 408, 429, 503 or 504 is made up to
    ``attempts`` times in all.
    """

    def __init__(
        self,
        url: str,
        *,
        wado_root: str | None = None,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = 3,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.qido_root, qido_auth = split_root(url, "QIDO-RS root")
        self.wado_root, wado_auth = split_root(wado_root or url, "WADO-RS root")
        self.name = name or data_source_name(self.qido_root)
        check_data_source(self.name, "data source name")
        self.timeout = timeout
        self.attempts = attempts
        self._session = requests.Session()
        self._session.headers.update(dict(headers or {}))
        auth = qido_auth or wado_auth
        if auth is not None and "Authorization" not in self._session.headers:
            self._session.auth = auth  # an explicit Authorization header wins
        self._qido = self._client(self.qido_root)
        self._wado = self._client(self.wado_root)

    def _client(self, root: str) -> DICOMwebClient:
        client = DICOMwebClient(root, session=self._session, timeout=self.timeout)
        # dicomweb-client sends "Host: <host>" without the port, and servers (Orthanc among
        # them) build BulkDataURIs and RetrieveURLs from that header: send host and port.
        client.host = urlsplit(root).netloc
        # Timeouts, dropped connections and 408/429/503/504 answers are tried again, after
        # 0.5 s, 1 s, 2 s, ...
        client.set_http_retry_params(
            retry=self.attempts > 1, max_attempts=self.attempts, wait_exponential_multiplier=250
        )
        return client

    @property
    def server(self) -> str:
        """How messages name this server: its QIDO-RS root, without credentials."""
        return f"DICOMweb server {self.qido_root}"

    @property
    def _tries(self) -> str:
        return f" ({self.attempts} attempts)" if self.attempts > 1 else ""

    def __repr__(self) -> str:
        return (
            f"DicomWebSource({self.qido_root!r}, wado_root={self.wado_root!r}, name={self.name!r})"
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def __enter__(self) -> DicomWebSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------- requests

    def _request(self, what: str, call: Callable[[], Any]) -> list[DicomJson]:
        """Run one dicomweb-client call; every failure becomes a PullError naming ``what``."""
        try:
            result = call()
        except requests.HTTPError as error:
            response = error.response
            status = (
                f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                if response is not None
                else "an HTTP error"
            )
            hint = (
                " (missing or wrong credentials?)"
                if response is not None and response.status_code in (401, 403)
                else ""
            )
            raise PullError(f"{self.server} answered {status} to {what}{hint}") from error
        except requests.Timeout as error:
            raise PullError(
                f"{self.server} did not answer {what} within {self.timeout:g} s{self._tries}"
            ) from error
        except requests.ConnectionError as error:
            raise PullError(
                f"cannot reach {self.server} for {what}{self._tries}: "
                f"{_describe_connection_error(error)}"
            ) from error
        except (requests.JSONDecodeError, UnicodeDecodeError) as error:
            raise PullError(f"{self.server} sent malformed JSON for {what}: {error}") from error
        except RecursionError:  # JSON nested past what the decoder follows
            raise PullError(f"{self.server} sent JSON nested too deeply for {what}") from None
        except requests.RequestException as error:
            raise PullError(f"{self.server} failed {what}: {type(error).__name__}") from error
        if not isinstance(result, list) or not all(
            isinstance(ds, dict) and all(isinstance(k, str) for k in ds) for ds in result
        ):
            raise PullError(
                f"{self.server} sent an unexpected answer to {what}: "
                "expected a JSON array of DICOM JSON objects"
            )
        return result

    def _search(
        self, what: str, search: Callable[[int, int], Any], key: str, keyword: str
    ) -> list[DicomJson]:
        """All results of a QIDO-RS search, page by page, one per ``key`` UID."""
        found: dict[str, DicomJson] = {}
        offset = 0
        while True:
            page = self._request(what, partial(search, PAGE_SIZE, offset))
            new = 0
            for index, ds in enumerate(page, start=offset):
                uid = _first(ds, key)
                if uid is None:
                    raise PullError(f"result #{index} of {what} on {self.server} has no {keyword}")
                try:
                    uid = check_uid(uid, keyword)
                except InvalidUIDError as error:
                    raise PullError(
                        f"result #{index} of {what} on {self.server}: {error}"
                    ) from None
                if uid not in found:
                    found[uid] = ds
                    new += 1
            # Stop at an empty page, or when the server ignored the offset (nothing new).
            if not page or not new:
                return list(found.values())
            offset += len(page)

    def search_studies(self, query: Mapping[str, str] | None = None) -> list[str]:
        """Study Instance UIDs matching a QIDO-RS query (attribute keyword or tag -> value)."""
        filters = dict(query or {})
        what = "the QIDO-RS study search" + (
            " " + " ".join(f"{k}={v}" for k, v in filters.items()) if filters else ""
        )
        results = self._search(
            what,
            lambda limit, offset: self._qido.search_for_studies(
                search_filters=filters, limit=limit, offset=offset
            ),
            STUDY_UID,
            "StudyInstanceUID",
        )
        return [str(_first(ds, STUDY_UID)).rstrip("\x00 ") for ds in results]

    def search_series(self, study_uid: str) -> list[DicomJson]:
        """The QIDO-RS series summaries of a study (DICOM JSON).

        Summaries that omit StudyInstanceUID (some servers do) get the study's; one naming
        another study is an error.
        """
        study_uid = check_uid(study_uid, "StudyInstanceUID")
        what = f"the QIDO-RS series search of study {study_uid}"
        results = self._search(
            what,
            lambda limit, offset: self._qido.search_for_series(
                study_instance_uid=study_uid, limit=limit, offset=offset
            ),
            SERIES_UID,
            "SeriesInstanceUID",
        )
        for ds in results:
            self._own_study(ds, study_uid, f"series {_first(ds, SERIES_UID)} of {what}")
        return results

    def series_metadata(self, study_uid: str, series_uid: str) -> list[DicomJson]:
        """The WADO-RS metadata of a series' instances, ready for ``Store.add_instances``.

        Each instance gets its ``wadors:`` imageId; missing Study/Series Instance UIDs are
        filled in and contradicting ones are an error; relative BulkDataURIs become absolute.
        """
        study_uid = check_uid(study_uid, "StudyInstanceUID")
        series_uid = check_uid(series_uid, "SeriesInstanceUID")
        where = f"series {series_uid} of study {study_uid}"
        instances = self._request(
            f"the WADO-RS metadata request of {where}",
            lambda: self._wado.retrieve_series_metadata(study_uid, series_uid),
        )
        series_url = f"{self.wado_root}/studies/{study_uid}/series/{series_uid}"
        for index, ds in enumerate(instances):
            what = f"instance #{index} of {where}"
            self._own_study(ds, study_uid, what)
            series = _first(ds, SERIES_UID)
            if series is None:
                ds[SERIES_UID] = {"vr": "UI", "Value": [series_uid]}
            elif str(series).rstrip("\x00 ") != series_uid:
                raise PullError(f"{self.server} sent {what} with SeriesInstanceUID {series}")
            sop = _first(ds, SOP_UID)
            if isinstance(sop, str):
                ds["imageId"] = wadors_image_id(
                    self.wado_root, study_uid, series_uid, sop.rstrip("\x00 ")
                )
            _absolute_bulk_data_uris(ds, series_url, self.wado_root)
        return instances

    def _own_study(self, ds: DicomJson, study_uid: str, what: str) -> None:
        study = _first(ds, STUDY_UID)
        if study is None:
            ds[STUDY_UID] = {"vr": "UI", "Value": [study_uid]}
        elif str(study).rstrip("\x00 ") != study_uid:
            raise PullError(f"{self.server} sent {what} with StudyInstanceUID {study}")

    # ------------------------------------------------------------------------- pull

    def pull(
        self,
        store: Store,
        *,
        studies: Iterable[str] | None = None,
        query: Mapping[str, str] | None = None,
        progress: Callable[[PullProgress], None] | None = None,
        keep_going: bool = False,
    ) -> PullReport:
        """Pull ``studies`` (UIDs), else every study matching ``query`` (else every study).

        Each series is committed on its own: its QIDO-RS summary first, then its instances.
        Raises :class:`PullError` at the first failure, naming the server and the study or
        series; series committed before it stay, and the error's ``report`` counts them.
        With ``keep_going`` a failed study or series is recorded in the report's ``failures``
        and the pull goes on (a failed study search still raises).
        """
        if studies is not None and query:
            raise ValueError("give either studies or a query, not both")
        run = PullRun(self, store, progress=progress, keep_going=keep_going)
        if studies is None:
            return run.run(partial(self.search_studies, query), named=False)
        return run.run(partial(_study_uids, studies), named=True)

    def store_series(self, store: Store, study_uid: str, summary: DicomJson) -> AddResult:
        """Fetch one series' instances, then commit its summary and instances together."""
        series_uid = check_uid(_first(summary, SERIES_UID), "SeriesInstanceUID")
        instances = self.series_metadata(study_uid, series_uid)  # fetched before the transaction

        def write() -> AddResult:
            store.add_series_metadata(summary, data_source=self.name, wado_root=self.wado_root)
            return store.add_instances(instances, data_source=self.name, wado_root=self.wado_root)

        try:  # run again, whole, after a lost connection or a concurrent writer's conflict
            result = store.run_in_transaction(write)
        except InvalidInputError as error:
            raise PullError(
                f"{self.server} sent series {series_uid} of study {study_uid} that cannot be "
                f"stored: {error}"
            ) from error
        log.info(
            "%s: series %s of study %s: %d added, %d already present",
            self.server, series_uid, study_uid, result.added, result.already_present,
        )  # fmt: skip
        return result


def _study_uids(studies: Iterable[str]) -> list[str]:
    """The given Study Instance UIDs, checked, without repeats."""
    try:
        return list(dict.fromkeys(check_uid(s, "StudyInstanceUID") for s in studies))
    except InvalidUIDError as error:
        raise PullError(str(error)) from None


def _absolute_bulk_data_uris(ds: DicomJson, series_url: str, wado_root: str) -> None:
    """Make BulkDataURIs absolute as OHIF does, recursing into sequences.

    ``bulk/7fe00010`` is relative to the series URL, ``/dicom-web/...`` to the server; an
    absolute URL loses any ``user:password@`` part.
    """
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(wado_root))
    for elem in ds.values():
        if not isinstance(elem, dict):
            continue
        uri = elem.get("BulkDataURI")
        if isinstance(uri, str) and uri:
            if uri.lower().startswith(("http://", "https://")):
                elem["BulkDataURI"] = redact_url(uri)
            elif uri.startswith("/"):
                elem["BulkDataURI"] = origin + uri
            else:
                elem["BulkDataURI"] = f"{series_url}/{uri}"
        items = elem.get("Value")
        if elem.get("vr") == "SQ" and isinstance(items, list):  # else refused when normalized
            for item in items:
                if isinstance(item, dict):
                    _absolute_bulk_data_uris(item, series_url, wado_root)

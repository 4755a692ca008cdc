"""``studies`` listing: Store.get_study_summaries vs the bare summary query.

Value: milliseconds for ``get_study_summaries()``. Baseline: the same statement executed and its
rows fetched, without building summaries (the floor). Also printed: the seconds the old
listing took (``get_study`` for every study, loading every instance only to count them).
"""

from __future__ import annotations

import repository
from repository.summaries import _query

from .common import best_of, emit, scratch


def _fill(store: repository.Store, studies: int, series: int, instances: int) -> None:
    for st in range(studies):
        store.add_instances([
            {"StudyInstanceUID": f"1.9.{st}", "SeriesInstanceUID": f"1.9.{st}.{se}",
             "SOPInstanceUID": f"1.9.{st}.{se}.{i}", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
             "Modality": "CT", "PatientName": f"P^{st}", "StudyDate": "20240101",
             "InstanceNumber": i, "ImagePositionPatient": [0, 0, i]}
            for se in range(series) for i in range(instances)
        ])  # fmt: skip


def run(url: str, studies: int, series: int, instances: int) -> None:
    """Print the figure for ``studies`` studies of ``series`` series of ``instances``."""
    with scratch(url, "bench_summaries") as scoped, repository.connect(scoped) as store:
        _fill(store, studies, series, instances)

        def bare() -> None:
            with store.engine.connect() as conn:
                conn.execute(_query()).all()

        def old() -> None:
            for uid in store.get_study_instance_uids():
                store.get_study(uid)

        value = best_of(store.get_study_summaries)
        baseline = best_of(bare)
        emit("study-summaries", url, value * 1e3, "ms", baseline * 1e3, value / baseline,
             studies=studies, instances=studies * series * instances,
             get_study_per_study_s=round(best_of(old, repeat=1), 4))  # fmt: skip

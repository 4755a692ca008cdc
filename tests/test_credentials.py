"""No credentials are stored, printed or put in an exception, whatever path a URL takes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, select

import repository
from repository.cli import main

SECRET = "s3cretPw"
ROOT = f"https://alice:{SECRET}@pacs.example/dicomweb"
STUDY, SERIES = "1.2.3", "1.2.3.4"


def _instance(sop: str, **extra: object) -> dict[str, object]:
    return {"StudyInstanceUID": STUDY, "SeriesInstanceUID": SERIES, "SOPInstanceUID": sop,
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2", **extra}  # fmt: skip


def _dump(store: repository.Store) -> str:
    """Every row of every table, as text."""
    tables = MetaData()
    tables.reflect(store.engine)
    with store.engine.connect() as conn:
        return "\n".join(
            repr(row) for table in tables.sorted_tables for row in conn.execute(select(table))
        )


def test_wado_roots_and_image_ids_are_stored_without_credentials(store: repository.Store) -> None:
    store.add_study({"StudyInstanceUID": "1.5"}, wado_root=ROOT, wado_uri=ROOT + "/wado")
    store.add_series_metadata(
        {"StudyInstanceUID": "1.6", "SeriesInstanceUID": "1.6.1"}, wado_root=ROOT
    )
    store.add_instances([_instance("1.2.3.4.1")], wado_root=ROOT, wado_uri=ROOT)
    store.add_instances([_instance("1.2.3.4.2", wadoRoot=ROOT, wadoUri=ROOT)], data_source="b")
    store.add_instances([_instance("1.2.3.4.3", imageId=f"wadors:{ROOT}/studies/x/frames/1")],
                        data_source="c")  # fmt: skip
    dump = _dump(store)
    assert "alice" not in dump and SECRET not in dump
    assert "https://pacs.example/dicomweb" in dump  # the address itself is kept
    study = store.get_study(STUDY)
    assert study is not None
    ids = [i.image_id for sl in study.series_lists for se in sl.series for i in se.instances]
    assert all(i and SECRET not in i and "pacs.example" in i for i in ids), ids


@pytest.mark.parametrize("url", [
    f"postgresql://user:{SECRET}@host:notaport/x",
    f"nosuchdriver://user:{SECRET}@host/x",
    f"postgresql+psycopg://user:{SECRET}@127.0.0.1:1/x",
])  # fmt: skip
def test_database_urls_lose_their_password_in_every_message(url: str) -> None:
    with pytest.raises(repository.RepositoryError) as caught:
        repository.connect(url)
    chain = []
    error: BaseException | None = caught.value
    while error is not None:  # what a traceback would show
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert SECRET not in chain[0], chain
    for command in (["studies"], ["db", "upgrade"], ["db", "check"], ["db", "current"]):
        result = CliRunner().invoke(main, ["--db", url, *command])
        assert result.exit_code != 0
        assert SECRET not in result.output, (command, result.output)

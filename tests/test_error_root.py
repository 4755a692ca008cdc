"""RepositoryError is the one root a user catches: every exception class the library defines
under a public name derives from it; internal control-flow signals have private names."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import repository
from repository import RepositoryError


def _library_exceptions() -> list[tuple[str, type[BaseException]]]:
    found = []
    for module_info in pkgutil.walk_packages(repository.__path__, "repository."):
        module = importlib.import_module(module_info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__):  # fmt: skip
                found.append((f"{module.__name__}.{name}", obj))
    return found


def test_every_public_exception_class_derives_from_repository_error() -> None:
    found = _library_exceptions()
    assert len(found) > 10  # the errors module and the modules that define their own
    public = [(name, cls) for name, cls in found if not name.rsplit(".", 1)[1].startswith("_")]
    assert [name for name, cls in public if not issubclass(cls, RepositoryError)] == []
    private = {name.rsplit(".", 1)[1] for name, cls in found} - {
        n.rsplit(".", 1)[1] for n, _ in public
    }
    assert {"_NotHandled", "_Short", "_BodyTooLarge"} <= private

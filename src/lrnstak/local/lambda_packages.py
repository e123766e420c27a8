"""The embedded stack's processes import what the deployed functions can: no more.

The dev virtualenv that `make run` uses holds packages the layers do not ship, for the tests of the client
(pandas). scikit-learn imports pandas whenever it can (`sklearn.utils.fixes`), which cost the stack's start
~0.3 s and let it run with a package no deployed function has. A finder placed first on `sys.meta_path`
answers such an import with ModuleNotFoundError, as Lambda would. (Not a None in `sys.modules`: scikit-learn
reads `sys.modules["pandas"]` itself and expects a module or nothing.)
"""

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

ABSENT_IN_LAMBDA = frozenset({"pandas"})


class _AbsentInLambda(MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in ABSENT_IN_LAMBDA:
            raise ModuleNotFoundError(f"No module named {fullname!r} in Lambda's layers", name=fullname)
        return None


def leave_out_what_lambda_lacks() -> None:
    """For a process's entry point, before anything imports scikit-learn: it holds for the whole process."""
    if not any(isinstance(finder, _AbsentInLambda) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AbsentInLambda())

"""The embedded stack's processes run without the packages the dev venv holds but Lambda's layers do not
(lrnstak/local/lambda_packages.py): scikit-learn works, and pandas is not imported."""

import subprocess
import sys

import pytest

from lrnstak.local.lambda_packages import ABSENT_IN_LAMBDA

LEFT_OUT = """
import sys
from lrnstak.local.lambda_packages import leave_out_what_lambda_lacks
leave_out_what_lambda_lacks()
import numpy as np
from sklearn.ensemble import RandomForestClassifier
model = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.eye(4), [0, 1, 0, 1])
assert model.predict(np.eye(4)).tolist() == [0, 1, 0, 1]
try:
    import pandas
except ImportError:
    print("absent")
"""


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_the_venv_has_pandas_and_scikit_learn_imports_it_when_it_can() -> None:
    # What makes leaving it out matter: in a plain process of this venv, scikit-learn pulls pandas in.
    assert run("import sys, sklearn.base; print('pandas' in sys.modules)") == "True"


def test_a_stack_process_predicts_without_pandas() -> None:
    assert frozenset({"pandas"}) == ABSENT_IN_LAMBDA
    assert run(LEFT_OUT) == "absent"


@pytest.mark.parametrize("module", ["lrnstak.local.run_function", "lrnstak.local.server"])
def test_the_entry_points_leave_out_before_scikit_learn_is_imported(module: str) -> None:
    # Both entry points call leave_out_what_lambda_lacks first thing; what they import before must not
    # bring scikit-learn in, or pandas would come with it.
    loaded = run(f"import sys, {module}; print(sorted(m for m in ('sklearn', 'pandas') if m in sys.modules))")
    assert loaded == "[]"

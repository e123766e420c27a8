"""The warning filters lrnstak adds to a process: as few as the warnings it must silence allow.

scikit-learn re-applies every filter of the process around each call it makes through joblib
(`sklearn.utils.parallel._FuncWrapper`: `resetwarnings`, then one `filterwarnings` per filter), which for a
forest's predict is once per tree: each filter costs a 100-tree forest's one-row prediction about 0.3 ms
(benchmarks/README.md, the 2026-12-08 section). So lrnstak's own warnings share one filter, and the filters
other packages install for warnings that can no longer be raised are taken out (storage/clients.py).
"""

import warnings

# UserWarnings that say nothing here:
# - scikit-learn, when an estimator fitted on a DataFrame is given an array: lrnstak builds that array in the
#   estimator's feature_names_in_ order on purpose (ml/predicting.py), and the warning would fill the logs;
# - Powertools, on every invocation that published no metric (most reads).
SILENCED_USER_WARNINGS = (
    "X does not have valid feature names",
    "No application metrics to publish",
)


def silence_known_warnings() -> None:
    """Installs lrnstak's one filter; calling it again changes nothing."""
    # Plain words, no regular-expression syntax in them: joined as alternatives of one pattern.
    warnings.filterwarnings("ignore", message="|".join(SILENCED_USER_WARNINGS), category=UserWarning)

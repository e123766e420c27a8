"""What the safe loader checks once a model is unpickled: the structures compiled code trusts.

Prediction walks a decision tree from the root by its nodes' child indices, reading the feature each node
splits on, in compiled code without bounds checks; ensembles check their input once and hand it to their
trees unchecked. The nodes, and every count an estimator keeps about its trees, come from the pickle, so
lrnstak.ml.safe_loading records the objects of these classes it builds and, before anything predicts, has
them checked here against each other. Nothing here unpickles or imports what a pickle names.
"""

import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from types import NoneType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

STRUCTURES_SHOWN: Final = 10  # problems named in a refusal; the rest are counted


def exception_summary(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


_TREE_LEAF: Final = -1
_PREDICTOR: Final = ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor")
_TREE_FIELDS: Final = ("left_child", "right_child", "feature", "threshold")


def _loaded_class(module: str, name: str) -> type | None:
    """A class, if its module has been imported; when it has not, nothing loaded can be an instance."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def _instance_state(obj: object) -> dict[str, Any]:
    try:
        state = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return {}
    return state if type(state) is dict else {}


def _feature_count(estimator: object) -> int | None:
    count = _instance_state(estimator).get("n_features_in_")
    return int(count) if isinstance(count, int | np.integer) and not isinstance(count, bool) else None


# Never hold a tree; not walked into.
_LEAVES: Final = (str, bytes, bytearray, int, float, complex, type(None), range, slice, type, np.generic, np.dtype)


# How _walk got to an object: (the route to its container, the key, index or attribute name, how to show it).
_Route = tuple[Any, object, str] | None


def _walk(root: object) -> Iterator[tuple[object, _Route]]:
    """Every object reachable from ``root``, once, with its route. Iterative: models can nest deeply."""
    seen: set[int] = set()
    pending: list[tuple[object, _Route]] = [(root, None)]
    while pending:
        obj, route = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj, route
        pending.extend(
            (child, (route, key, shown)) for child, key, shown in _children(obj) if not isinstance(child, _LEAVES)
        )


def instance_states(root: object) -> Iterator[dict[str, Any]]:
    """The attribute dict of every object reachable from ``root`` that has one: each estimator of a model, its
    steps and members, and what they hold. The dicts themselves, not copies."""
    for obj, _ in _walk(root):
        state = _instance_state(obj)
        if state:
            yield state


def _children(obj: object) -> Iterable[tuple[object, object, str]]:
    if isinstance(obj, list | tuple):
        return _items(obj)
    if isinstance(obj, dict):
        if _only_leaves(obj) and _only_leaves(obj.values()):
            return ()
        return ((child, key, "[{!r}]") for key, value in obj.items() for child in (key, value))
    if isinstance(obj, set | frozenset):
        return () if _only_leaves(obj) else ((item, None, "{{...}}") for item in obj)
    if isinstance(obj, np.ndarray):
        return _items(obj.ravel().tolist()) if obj.dtype.hasobject else ()
    return ((value, name, ".{}") for name, value in _instance_state(obj).items())


def _items(items: list[Any] | tuple[Any, ...]) -> Iterable[tuple[object, object, str]]:
    return () if _only_leaves(items) else ((item, index, "[{}]") for index, item in enumerate(items))


# Types of most items in a model's lists, dicts and object arrays (names, classes, vocabularies).
_LEAF_TYPES: Final = frozenset({str, bytes, int, float, bool, NoneType})


def _only_leaves(items: Iterable[object]) -> bool:
    # At C speed: a vocabulary of a million words is looked at in milliseconds.
    return set(map(type, items)) <= _LEAF_TYPES


def _path(route: _Route) -> str:
    steps = []
    while route is not None:
        route, key, shown = route
        # Keys are shown only when short: the repr of a crafted key can be enormous.
        shown_key = key is None or (type(key) in (int, str) and len(str(key)) <= 60)
        steps.append(shown.format(key) if shown_key else "[...]")
    return "model" + "".join(reversed(steps))


def checks_structure(kind: type) -> bool:
    """Whether objects of this class are checked once the load is done: Trees, and estimators with trees."""
    if kind is _loaded_class("sklearn.tree._tree", "Tree"):
        return True
    return any((owner := _loaded_class(module, name)) and issubclass(kind, owner) for module, name, *_ in _TREE_OWNERS)


def structure_problems(objects: list[object], paths: dict[int, str]) -> list[str]:
    def where(obj: object) -> str:
        return paths.get(id(obj)) or f"a {type(obj).__name__}"

    tree_class = _loaded_class("sklearn.tree._tree", "Tree")
    owner_kinds = [
        (cls, check, probe) for module, name, check, probe in _TREE_OWNERS if (cls := _loaded_class(module, name))
    ]
    trees = [(obj, where(obj)) for obj in objects if type(obj) is tree_class]
    owners = [
        (check, probe, obj, where(obj)) for obj in objects for cls, check, probe in owner_kinds if isinstance(obj, cls)
    ]
    problems = list(_tree_problems(trees))
    for check, _, owner, path in owners:
        problems.extend(_checked(check, owner, path))
    if not problems:
        # Probes predict a little; only on structures already found sound.
        for _, probe, owner, path in owners:
            if probe is not None:
                problems.extend(_checked(probe, owner, path))
    return problems


def object_paths(root: object, objects: list[object]) -> dict[int, str]:
    """Where ``objects`` are in ``root``, as attribute and index paths; those not reachable are left out."""
    wanted = {id(obj) for obj in objects}
    paths: dict[int, str] = {}
    for obj, route in _walk(root):
        if id(obj) in wanted:
            paths[id(obj)] = _path(route)
            if len(paths) == len(wanted):
                break
    return paths


_OwnerCheck = Callable[[Any, str], Iterator[str]]


def _checked(check: _OwnerCheck, owner: object, path: str) -> list[str]:
    try:
        return list(check(owner, path))
    except Exception as exc:
        # What cannot be checked is not loaded.
        return [f"{path} could not be checked ({exception_summary(exc)})"]


def _tree_problems(trees: list[tuple[Any, str]]) -> Iterator[str]:
    """The nodes of every sklearn Tree, all trees at once: a forest has hundreds."""
    tables = []
    for tree, path in trees:
        problem = _tree_header_problem(tree)
        if problem is not None:
            yield f"{path}: {problem}"
        else:
            tables.append((tree, path))
    if not tables:
        return
    # Field by field: concatenating structured arrays promotes their dtype once per array.
    node_tables = [tree.__getstate__()["nodes"] for tree, _ in tables]
    nodes = {name: np.concatenate([table[name] for table in node_tables]) for name in _TREE_FIELDS}
    counts = np.array([tree.node_count for tree, _ in tables])
    owner, local, starts = _node_positions(counts)
    size = counts[owner]
    n_features = np.array([tree.n_features for tree, _ in tables])[owner]
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == _TREE_LEAF
    # sklearn numbers a child after its parent, which also rules out cycles; leaves have no children.
    bad = np.where(
        leaf,
        right != _TREE_LEAF,
        (left <= local)
        | (left >= size)
        | (right <= local)
        | (right >= size)
        | (feature < 0)
        | (feature >= n_features)
        | np.isnan(nodes["threshold"]),
    )
    if bad.any():
        for table in np.unique(owner[bad])[:STRUCTURES_SHOWN]:
            tree, path = tables[table]
            node = int(np.flatnonzero(bad & (owner == table))[0] - starts[table])
            yield f"{path}: {_bad_tree_node(tree, node)}"
        return
    inner = ~leaf
    children = np.concatenate([left[inner], right[inner]]) + np.tile(starts[owner[inner]], 2)
    parents = np.bincount(children, minlength=left.size)
    parents[starts] += 1  # the roots, which have none
    for table in np.unique(owner[parents != 1])[:STRUCTURES_SHOWN]:
        yield f"{tables[table][1]}: some nodes have no parent or several, so they do not form a tree"
    if (parents != 1).any():
        return
    depth = _node_depths(children, np.tile(np.flatnonzero(inner), 2), starts, left.size)
    deepest = np.maximum.reduceat(depth, starts)
    for table, (tree, path) in enumerate(tables):
        # decision_path sizes its output by max_depth and writes the nodes of each path into it.
        if tree.max_depth != deepest[table]:
            yield f"{path}: it records a depth of {tree.max_depth}, but its deepest leaf is at {deepest[table]}"


def _tree_header_problem(tree: Any) -> str | None:
    count, capacity = tree.node_count, tree.capacity
    if count < 1 or count != capacity:
        # Reading the nodes of a tree with more nodes than room would itself read out of bounds.
        return f"it counts {count} nodes in room for {capacity}"
    if tree.n_features < 1 or tree.n_outputs < 1:
        return f"it has {tree.n_features} features and {tree.n_outputs} outputs"
    n_classes = np.asarray(tree.n_classes)
    if n_classes.min() < 1 or n_classes.max() != tree.max_n_classes:
        return f"its class counts {n_classes.tolist()} do not match its {tree.max_n_classes} values per output"
    return None


def _bad_tree_node(tree: Any, node: int) -> str:
    left, right = int(tree.children_left[node]), int(tree.children_right[node])
    if left == _TREE_LEAF:
        return f"node {node} is a leaf with a right child ({right})"
    count = tree.node_count
    if not (node < left < count and node < right < count):
        return f"node {node} has children {left} and {right}, not both among nodes {node + 1} to {count - 1}"
    feature = int(tree.feature[node])
    if not 0 <= feature < tree.n_features:
        return f"node {node} splits on feature {feature}, not one of its {tree.n_features}"
    return f"node {node} has no threshold"


def _node_positions(counts: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], ...]:
    """For node tables laid end to end: each node's table, its index in the table, and where tables start."""
    starts = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(int(counts.sum())) - starts[owner], starts


def _node_depths(
    children: npt.NDArray[np.intp], parents: npt.NDArray[np.intp], roots: npt.NDArray[np.intp], total: int
) -> npt.NDArray[np.intp]:
    """Depth of every node of trees laid end to end, by pointer jumping: log2(depth) numpy steps."""
    ancestor = np.arange(total)
    ancestor[children] = parents
    depth = np.ones(total, dtype=np.intp)
    depth[roots] = 0
    while True:
        # Invariant: depth[i] is the distance from i to ancestor[i]; roots are their own, at 0.
        hop = depth[ancestor]
        if not hop.any():
            return depth
        depth += hop
        ancestor = ancestor[ancestor]


def _is_tree(obj: object) -> bool:
    return type(obj) is _loaded_class("sklearn.tree._tree", "Tree")


def _fed_tree_problem(estimator: object, features: int | None, path: str) -> str | None:
    """A tree an ensemble gives input it checked itself: the tree must split on those features and no more."""
    base = _loaded_class("sklearn.tree._classes", "BaseDecisionTree")
    tree: Any = _instance_state(estimator).get("tree_") if base is not None and isinstance(estimator, base) else None
    if not _is_tree(tree):
        return f"{path} is a {type(estimator).__name__}, not a fitted decision tree"
    if features is None or tree.n_features != features:
        return f"{path} splits on {tree.n_features} features, but its ensemble checks input for {features}"
    return None


def _decision_tree_problems(estimator: object, path: str) -> Iterator[str]:
    state = _instance_state(estimator)
    tree: Any = state.get("tree_")
    if tree is None:
        return  # not fitted: predict says so itself
    if not _is_tree(tree):
        yield f"{path}.tree_ is a {type(tree).__name__}, not a Tree"
        return
    # predict checks the width of its input only against n_features_in_, and not at all without it.
    features = _feature_count(estimator)
    if features is None:
        yield f"{path} does not record how many features it takes, so predict would not check its input"
    elif features != tree.n_features:
        yield f"{path} checks input for {features} features, but its tree splits on {tree.n_features}"
    if state.get("n_outputs_", tree.n_outputs) != tree.n_outputs:
        yield f"{path} predicts {state.get('n_outputs_')!r} outputs, but its tree has {tree.n_outputs}"


def _forest_problems(forest: object, path: str) -> Iterator[str]:
    # Forests validate input once and call their trees with check_input=False.
    trees = _instance_state(forest).get("estimators_")
    if trees is None:
        return
    if type(trees) is not list:
        yield f"{path}.estimators_ is a {type(trees).__name__}, not a list of trees"
        return
    features = _feature_count(forest)
    for index, tree in enumerate(trees):
        problem = _fed_tree_problem(tree, features, f"{path}.estimators_[{index}]")
        if problem is not None:
            yield problem


def _isolation_forest_problems(forest: object, path: str) -> Iterator[str]:
    # IsolationForest gives each tree X[:, features] (or X itself) with check_input=False.
    state = _instance_state(forest)
    trees, subsets = state.get("estimators_"), state.get("estimators_features_")
    if trees is None:
        return
    if type(trees) is not list or type(subsets) is not list or len(subsets) != len(trees):
        yield f"{path} does not have one feature subset per tree"
        return
    features = _feature_count(forest)
    for index, (tree, subset) in enumerate(zip(trees, subsets, strict=True)):
        width = len(subset) if isinstance(subset, np.ndarray) and subset.ndim == 1 else None
        if width is None or features is None or width > features:
            yield f"{path}.estimators_features_[{index}] is not a subset of its {features} features"
            continue
        problem = _fed_tree_problem(tree, width, f"{path}.estimators_[{index}]")
        if problem is not None:
            yield problem


def _gradient_boosting_problems(model: object, path: str) -> Iterator[str]:
    # predict_stages walks every tree's nodes itself, on input checked against the model and the first tree.
    state = _instance_state(model)
    stages = state.get("estimators_")
    if stages is None:
        return
    if not (isinstance(stages, np.ndarray) and stages.dtype == object and stages.ndim == 2 and stages.size):
        yield f"{path}.estimators_ is not a table of trees per stage"
        return
    if stages.shape[1] != state.get("n_trees_per_iteration_"):
        yield f"{path} has {stages.shape[1]} trees per stage but {state.get('n_trees_per_iteration_')!r} outputs"
    features = _feature_count(model)
    for (stage, column), tree in np.ndenumerate(stages):
        problem = _fed_tree_problem(tree, features, f"{path}.estimators_[{stage}, {column}]")
        if problem is not None:
            yield problem


# GradientBoosting's probe feeds this many zeros at most.
_PROBE_FEATURES: Final = 2**20


def _gradient_boosting_probe(model: Any, path: str) -> Iterator[str]:
    # predict_stages adds each stage's k-th tree to column k of the init estimator's raw predictions without
    # checking that the column exists. How many there are depends on the init estimator: ask it.
    stages = _instance_state(model).get("estimators_")
    features = _feature_count(model)
    if stages is None or features is None:
        return
    if features > _PROBE_FEATURES:
        yield f"{path} takes {features} features, more than lrnstak can check"
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = model._raw_predict_init(np.zeros((1, features), dtype=np.float32))
    if not (isinstance(raw, np.ndarray) and raw.dtype == np.float64 and raw.shape == (1, stages.shape[1])):
        shape = getattr(raw, "shape", None)
        yield f"{path}'s init estimator gives raw predictions of shape {shape}, not one per tree of a stage"


def _hist_gradient_boosting_problems(model: object, path: str) -> Iterator[str]:
    state = _instance_state(model)
    predictors = state.get("_predictors")
    if predictors is None:
        return
    if state.get("_in_fit", False) is not False:
        yield f"{path} is marked as fitting, which makes predict skip checking its input"
    if state.get("_preprocessor") is not None:
        # Set for categorical features, out of a FunctionTransformer(partial(check_array)) the allowlist
        # refuses anyway; its output, which the predictors index, could be narrower than the input.
        yield f"{path} has an input preprocessor (categorical features), which lrnstak does not load"
    per_iteration = state.get("n_trees_per_iteration_")
    predictor_class = _loaded_class(*_PREDICTOR)
    if type(predictors) is not list or not all(
        type(stage) is list and len(stage) == per_iteration and all(type(p) is predictor_class for p in stage)
        for stage in predictors
    ):
        yield f"{path}._predictors is not {per_iteration!r} TreePredictors per iteration"
        return
    features = _feature_count(model)
    if features is None:
        yield f"{path} does not record how many features it takes"
        return
    categorical = _instance_state(state.get("_bin_mapper")).get("is_categorical_")
    flat = [
        (predictor, f"{path}._predictors[{i}][{k}]")
        for i, stage in enumerate(predictors)
        for k, predictor in enumerate(stage)
    ]
    yield from _predictor_problems(flat, features, categorical)


_PREDICTOR_FIELDS: Final = ("left", "right", "feature_idx", "is_leaf", "is_categorical", "bitset_idx")


def _is_bitset_table(bitsets: object) -> bool:
    # Read as [row, bit // 32] for bits up to 255: eight 32-bit words a row.
    return (
        isinstance(bitsets, np.ndarray)
        and bitsets.dtype == np.uint32
        and bitsets.ndim == 2
        and bitsets.shape[1] == 8
        and bitsets.flags.c_contiguous
    )


def _predictor_problems(predictors: list[tuple[Any, str]], features: int, categorical: object) -> Iterator[str]:
    """The nodes of HistGradientBoosting's TreePredictors, all at once, for input of ``features`` columns."""
    record = sys.modules["sklearn.ensemble._hist_gradient_boosting.common"].PREDICTOR_RECORD_DTYPE
    tables = []
    for predictor, path in predictors:
        state = _instance_state(predictor)
        nodes: Any = state.get("nodes")
        raw: Any = state.get("raw_left_cat_bitsets")
        binned: Any = state.get("binned_left_cat_bitsets")
        if not (isinstance(nodes, np.ndarray) and nodes.dtype == record and nodes.ndim == 1 and len(nodes)):
            yield f"{path}.nodes is not an array of predictor nodes"
        elif not (_is_bitset_table(raw) and _is_bitset_table(binned)):
            yield f"{path} has malformed category bitsets"
        else:
            tables.append((nodes, min(len(raw), len(binned)), path))
    if not tables:
        return
    nodes = {name: np.concatenate([table[0][name] for table in tables]) for name in _PREDICTOR_FIELDS}
    counts = np.array([len(table[0]) for table in tables])
    owner, local, _ = _node_positions(counts)
    size = counts[owner]
    left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
    feature, split_on_category = nodes["feature_idx"], (nodes["is_categorical"] != 0) & (nodes["is_leaf"] == 0)
    bad = (nodes["is_leaf"] == 0) & (
        (left <= local)
        | (left >= size)
        | (right <= local)
        | (right >= size)
        | (feature < 0)
        | (feature >= features)
        | (split_on_category & (nodes["bitset_idx"] >= np.array([table[1] for table in tables])[owner]))
    )
    if not bad.any() and split_on_category.any():
        # Known categories are looked up by the feature's position among the categorical ones.
        if not (isinstance(categorical, np.ndarray) and categorical.dtype == bool and categorical.shape == (features,)):
            bad |= split_on_category
        else:
            bad |= split_on_category & ~categorical[np.where(split_on_category, feature, 0)]
    for table in np.unique(owner[bad])[:STRUCTURES_SHOWN]:
        node = int(np.flatnonzero(bad & (owner == table))[0] - (np.cumsum(counts) - counts)[table])
        yield (
            f"{tables[table][2]}: node {node} (children {int(left[owner == table][node])} and "
            f"{int(right[owner == table][node])}, feature {int(feature[owner == table][node])}) does not fit "
            f"its {counts[table]} nodes, {features} features and {tables[table][1]} category bitsets"
        )


_TREE_OWNERS: Final[tuple[tuple[str, str, _OwnerCheck, _OwnerCheck | None], ...]] = (
    ("sklearn.tree._classes", "BaseDecisionTree", _decision_tree_problems, None),
    ("sklearn.ensemble._forest", "BaseForest", _forest_problems, None),
    ("sklearn.ensemble._iforest", "IsolationForest", _isolation_forest_problems, None),
    ("sklearn.ensemble._gb", "BaseGradientBoosting", _gradient_boosting_problems, _gradient_boosting_probe),
    (
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
        "BaseHistGradientBoosting",
        _hist_gradient_boosting_problems,
        None,
    ),
)

"""A function's cold start is mostly importing it: scikit-learn, FastAPI, pydantic and boto3 make some 330,000
objects that live as long as the container, and the cyclic GC would scan them again and again while they are
made (~0.17 s of the predict function's import, benchmarks/README.md). Each functions/<name>/app.py creates an
`ImportsPause` before its other imports and ends it once its handler exists: the GC is held off meanwhile, and
what the imports made is then frozen out of its way (`gc.freeze`) for the container's life.

Where the GC is already off (the local stack holds it off through its own start, then freezes), a pause
leaves it as it found it."""

import gc


class ImportsPause:
    _frozen_once = False

    def __init__(self) -> None:
        self._resume = gc.isenabled()
        gc.disable()

    def end(self) -> None:
        if not self._resume:
            return
        self._resume = False
        # Once per process: a process that imports several functions (tests) would otherwise freeze, for
        # good, whatever garbage it holds when it imports the next one.
        if not ImportsPause._frozen_once:
            ImportsPause._frozen_once = True
            gc.freeze()
        gc.enable()

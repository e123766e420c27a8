"""`python -m lrnstak.local`: the embedded stack (what `make run` starts)."""

import gc

# Starting allocates some 300,000 objects that live as long as the process (modules, classes, functions,
# moto's and botocore's models): the cyclic GC would scan them again and again, ~15% of the start's CPU.
# It is switched back on, with those objects frozen out of its way, once the stack serves (server.py).
gc.disable()

from lrnstak.local.lambda_packages import leave_out_what_lambda_lacks  # noqa: E402

leave_out_what_lambda_lacks()

from lrnstak.local.server import main  # noqa: E402 - after the GC is off: this import is most of the start

main()

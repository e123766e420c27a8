"""`python -m lrnstak.local.run_function <LogicalId>`: one Lambda invocation in a fresh interpreter.

Reads the event (JSON) on stdin, calls the function's `handler` like the Lambda runtime would, and prints
the result on the last line after RESULT_MARKER (the function's own logs go to stdout too).
"""

import json
import os
import sys
import time
import uuid
from typing import Any

from lrnstak.local.gateway import load_function_module
from lrnstak.local.lambda_packages import leave_out_what_lambda_lacks
from lrnstak.local.template import Template

RESULT_MARKER = "LRNSTAK_RESULT "


class LocalLambdaContext:
    def __init__(self, function: str, timeout_seconds: float) -> None:
        self.function_name = function
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 3008
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> None:
    function = sys.argv[1]
    event: dict[str, Any] = json.load(sys.stdin)
    module = load_function_module(Template.load(), function)
    context = LocalLambdaContext(function, float(os.environ.get("WORKER_TIMEOUT_SECONDS", "900")))
    result = module.handler(event, context)
    print(RESULT_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    leave_out_what_lambda_lacks()
    main()

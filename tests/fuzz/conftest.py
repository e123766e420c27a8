"""The fuzz suite's tally: every request the OpenAPI fuzzer sends, by function, operation and status."""

from collections import Counter

import pytest

# (function, operation, status) -> requests sent.
SENT: Counter[tuple[str, str, int]] = Counter()


@pytest.fixture(scope="session")
def sent_requests() -> Counter[tuple[str, str, int]]:
    return SENT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SENT:
        return
    statuses: dict[str, Counter[int]] = {}
    for (app, _operation, status), count in SENT.items():
        statuses.setdefault(app, Counter())[status] += count
    terminalreporter.section("OpenAPI fuzzing")
    for app, counts in sorted(statuses.items()):
        shown = ", ".join(f"{status}: {counts[status]}" for status in sorted(counts))
        terminalreporter.write_line(f"{app}: {counts.total()} requests ({shown})")
    if terminalreporter.config.get_verbosity() > 0:
        per_operation: dict[tuple[str, str], Counter[int]] = {}
        for (app, operation, status), count in SENT.items():
            per_operation.setdefault((app, operation), Counter())[status] += count
        for (app, operation), counts in sorted(per_operation.items()):
            shown = ", ".join(f"{status}: {counts[status]}" for status in sorted(counts))
            terminalreporter.write_line(f"  {app} {operation}: {shown}")
    operations = len({(app, operation) for app, operation, _status in SENT})
    server_errors = sum(count for (_app, _operation, status), count in SENT.items() if status >= 500)
    terminalreporter.write_line(
        f"total: {SENT.total()} requests over {operations} operations, {server_errors} answered with a 5xx"
    )

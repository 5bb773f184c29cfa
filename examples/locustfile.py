"""Load an OpenAI-compatible endpoint with Locust, streaming through the holynb client.

One process, against the bundled mock (start it first: `holynb-mock --port 8765`):

    locust -f examples/locustfile.py --headless -u 50 -r 10 -t 30s --host http://127.0.0.1:8765/v1

A master and two workers (run the workers on other hosts with --master-host MASTER_IP):

    locust -f examples/locustfile.py --master --headless --expect-workers 2 \\
        -u 200 -r 50 -t 1m --host http://127.0.0.1:8765/v1 --csv run
    locust -f examples/locustfile.py --worker --master-host 127.0.0.1   # twice

Locust prints its tables, then holynb's report (TTFT / ITL / TPOT / E2E percentiles per transport);
`python -m holynb.loadtest report run_stats.csv` prints that report again from the CSV.
The API key comes from HOLYSHEEP_API_KEY (the mock accepts any key that is not a placeholder).
See docs/load.md.
"""

from __future__ import annotations

from locust import constant, task

from holynb.loadtest import HolyUser


class ChatSSE(HolyUser):
    """Streams over SSE, back to back (a closed loop: one stream in flight per user)."""

    weight = 3
    wait_time = constant(0)
    prompt = "Write a short story about a lighthouse keeper who collects lost letters."
    max_tokens = 64
    transport = "sse"


class ChatWS(HolyUser):
    """Streams over WebSocket; one user in four, with a short think time between questions."""

    weight = 1
    wait_time = constant(0.5)
    max_tokens = 64
    transport = "ws"
    params = {"temperature": 0.7}

    @task
    def two_questions(self) -> None:
        """A custom task: two prompts in a row (each stream reports ttft, itl, tpot and e2e)."""
        self.stream("Name three lighthouses in Scotland.")
        self.stream("Which one is the oldest?", max_tokens=16)

"""pybreaker on Redis, one request at a time: the peer of `breaker run --store redis://...`.

Usage: pybreaker_run.py URL REDIS_URL REQUESTS; prints the calls per second.
"""

import sys
import time

import pybreaker
import redis
import requests


def main() -> None:
    url, redis_url, requests_to_send = sys.argv[1], sys.argv[2], int(sys.argv[3])
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, redis.Redis.from_url(redis_url), namespace="peer"
    )
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=180, state_storage=storage)
    # One connection for every request, as the breaker command keeps one.
    session = requests.Session()

    def get() -> requests.Response:
        response = session.get(url, timeout=10)
        response.raise_for_status()
        return response

    started = time.perf_counter()
    for _ in range(requests_to_send):
        breaker.call(get)
    print(requests_to_send / (time.perf_counter() - started))


if __name__ == "__main__":
    main()

"""Where requests go: server addresses, spread over and followed as they change.

A server is given as ``host:port``. An address literal stands for itself; a
name (a Kubernetes headless Service, a hosts-file entry) stands for every
address it resolves to, and is looked up again after a failure and on a timer,
since pods restarted by a rolling update come back at new addresses.
"""

import ipaddress
import random
import socket
import threading
import time


def parse_server(server):
    """``host:port`` (IPv6 in brackets) -> (host, port)."""
    host, sep, port = server.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"server '{server}' must be host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _is_address(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _endpoint(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve(host):
    """The addresses ``host`` resolves to now, in the resolver's order, without repeats."""
    seen = []
    for *_, sockaddr in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM):
        if sockaddr[0] not in seen:
            seen.append(sockaddr[0])
    return seen


class Endpoints:
    """The current endpoints (``address:port`` strings) of a list of servers.

    ``pick()`` returns a healthy endpoint (round robin, skipping those backing
    off after a failure); ``failed()`` backs one off (0.1 s doubling to 5 s)
    and asks for a new lookup of the names; ``refresh()`` looks names up again
    when one is due (at most once a second after a failure, and every
    ``lookup_interval`` seconds). A failed lookup keeps the endpoints there
    are. Thread-safe: one instance serves a worker's request threads.
    """

    def __init__(self, servers, lookup_interval=30.0, resolver=resolve, clock=time.monotonic):
        if isinstance(servers, str):
            servers = [s for s in servers.split(",") if s.strip()]
        if not servers:
            raise ValueError("give at least one server (host:port)")
        self._servers = [parse_server(s) for s in servers]
        self._resolver = resolver
        self._clock = clock
        self._lookup_interval = lookup_interval
        self._lock = threading.Lock()
        self._down_until = {}
        self._failures = {}
        self._turn = random.randrange(1 << 16)  # workers start at different endpoints
        self._lookup_wanted = False
        self._last_lookup = -1e9
        self._current = []
        self._by_server = {}
        self.refresh(force=True)
        if not self._current:
            raise ValueError(f"none of the servers {', '.join(servers)} resolves to an address")

    def refresh(self, force=False):
        """Looks the names up again if due; returns the endpoints."""
        now = self._clock()
        with self._lock:
            due = force or now - self._last_lookup >= self._lookup_interval or (
                self._lookup_wanted and now - self._last_lookup >= 1.0)
            if not due:
                return list(self._current)
            self._last_lookup = now
            self._lookup_wanted = False
        by_server = {}
        for host, port in self._servers:
            if _is_address(host):
                by_server[(host, port)] = [_endpoint(host, port)]
                continue
            try:
                addresses = self._resolver(host)
            except OSError:
                addresses = []
            # A failed lookup (DNS away, every pod down at once) keeps what there was.
            by_server[(host, port)] = ([_endpoint(a, port) for a in addresses] if addresses
                                       else self._by_server.get((host, port), []))
        with self._lock:
            self._by_server = by_server
            self._current = list(dict.fromkeys(e for endpoints in by_server.values() for e in endpoints))
            return list(self._current)

    def pick(self):
        """A healthy endpoint, or the one whose back-off ends first."""
        self.refresh()
        now = self._clock()
        with self._lock:
            endpoints = self._current
            for offset in range(len(endpoints)):
                endpoint = endpoints[(self._turn + offset) % len(endpoints)]
                if self._down_until.get(endpoint, 0) <= now:
                    self._turn = (self._turn + offset + 1) % (1 << 30)
                    return endpoint
            return min(endpoints, key=lambda e: self._down_until.get(e, 0))

    def wait_for(self, endpoint):
        """Seconds until ``endpoint``'s back-off ends (0 when healthy)."""
        with self._lock:
            return max(0.0, self._down_until.get(endpoint, 0) - self._clock())

    def failed(self, endpoint):
        with self._lock:
            failures = self._failures.get(endpoint, 0) + 1
            self._failures[endpoint] = failures
            backoff = min(5.0, 0.1 * 2 ** min(failures - 1, 6))
            self._down_until[endpoint] = self._clock() + backoff
            self._lookup_wanted = True

    def hold(self, endpoint, seconds):
        """A rate limit asked for a wait: no requests there before it is over; not a failure."""
        with self._lock:
            self._down_until[endpoint] = max(self._down_until.get(endpoint, 0), self._clock() + seconds)

    def succeeded(self, endpoint):
        with self._lock:
            self._failures.pop(endpoint, None)
            self._down_until.pop(endpoint, None)

    @property
    def current(self):
        with self._lock:
            return list(self._current)

"""Vast.ai over its REST API (https://docs.vast.ai/api-reference), the calls docs/providers.md lists.

Reads are retried with exponential backoff on 429, 5xx and transport errors. A rent is retried
only on 429 (Vast refused it before acting): after a 5xx or a lost connection a machine may
exist, so ``ProviderUnavailable`` says the outcome is unknown and the renter looks the machine
up by its label instead of renting a second one. The API key goes in the Authorization header
and nowhere else: no log line and no error message carries it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx
import structlog
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from takeover.domain.errors import OfferGone, ProviderError, ProviderUnavailable
from takeover.domain.gpus import matches
from takeover.ports import Machine, Offer, RentRequest

log = structlog.get_logger("takeover.vast")
T = TypeVar("T")
DEFAULT_URL = "https://console.vast.ai"
_GONE = ("no_such_ask", "not_found", "ask_not_available", "no longer available")
_PAGE = 25  # the v1 listing's largest page
# Vast's rate limits are minimum intervals per endpoint and key, answered 429 with no Retry-After
# (docs/providers.md): seconds between two calls of each endpoint this adapter makes.
VAST_INTERVALS = {"search": 6.0, "create": 4.5, "show": 2.0, "list": 2.0, "destroy": 3.0, "user": 2.0}


def paced(scale: float) -> dict[str, float]:
    """VAST_INTERVALS scaled: 1 as Vast enforces them, less for a fake marketplace that asks it."""
    return {endpoint: seconds * scale for endpoint, seconds in VAST_INTERVALS.items()}


_MAX_PAGES = 400  # 10,000 instances: a cursor that never ends is an error, not a hang


class _Retry(Exception):
    """A response worth another try (429, 5xx)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code}")
        self.response = response


def _retryable_read(error: BaseException) -> bool:
    return isinstance(error, _Retry | httpx.TransportError)


def _refused_before_acting(error: BaseException) -> bool:
    return isinstance(error, _Retry) and error.response.status_code == 429


class VastMarketplace:
    """``regions`` maps a takeover region to the countries (Vast's two-letter geolocation codes)
    whose offers count as in it; a region not in the map is taken as a country code itself."""

    name = "vast"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_URL,
        regions: dict[str, tuple[str, ...]] | None = None,
        timeout: float = 20.0,
        attempts: int = 4,
        backoff: float = 0.5,
        intervals: dict[str, float] | None = None,
        create_timeout: float = 120.0,
        disk_gb: int | None = None,
    ) -> None:
        """``intervals``: seconds between two calls of one endpoint (VAST_INTERVALS by default);
        ``create_timeout``: how long a rent may take to answer (Vast's own client waits 120 s);
        ``disk_gb``: the disk every machine is rented with (searched for, and priced in)."""
        self.regions = regions or {}
        self._disk_gb = disk_gb
        self._pacer = Pacer(VAST_INTERVALS if intervals is None else intervals)
        self._create_timeout = create_timeout
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
        )
        wait = wait_exponential(multiplier=backoff, max=10)
        self._read = retry(
            retry=retry_if_exception(_retryable_read),
            stop=stop_after_attempt(attempts),
            wait=wait,
            reraise=True,
        )
        self._create = retry(
            retry=retry_if_exception(_refused_before_acting),
            stop=stop_after_attempt(attempts),
            wait=wait,
            reraise=True,
        )

    def close(self) -> None:
        self._client.close()

    # the API calls --------------------------------------------------------------------------
    def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        self._pacer.wait(endpoint)  # every try, retries too: a retry too soon is refused again
        timeout = self._create_timeout if endpoint == "create" else httpx.USE_CLIENT_DEFAULT
        response = self._client.request(method, path, json=body, params=params, timeout=timeout)
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retry(response)
        return response

    def _reading(self, fn: Callable[[], T]) -> T:
        try:
            result: T = self._read(fn)()
        except _Retry as error:
            raise ProviderUnavailable(f"vast: {_describe(error.response)}") from None
        except httpx.TransportError as error:
            raise ProviderUnavailable(f"vast unreachable: {error.__class__.__name__}") from None
        return result

    def offers(
        self, region: str, max_price: float | None, gpu_names: Sequence[str] = (), spot: bool = False
    ) -> list[Offer]:
        """POST /api/v0/bundles/: rentable, verified offers of the region's countries."""
        countries = self.regions.get(region) or (region.upper(),)
        query: dict[str, Any] = {
            "rentable": {"eq": True},
            "verified": {"eq": True},
            "geolocation": {"in": list(countries)},
            "type": "bid" if spot else "ondemand",
            "order": [["dph_total", "asc"]],
            "limit": 256,
        }
        if max_price is not None:
            query["dph_total"] = {"lte": max_price}
        if self._disk_gb is not None:  # the disk rented, in the filter and in the price
            query["disk_space"] = {"gte": self._disk_gb}
            query["allocated_storage"] = self._disk_gb
        raws: list[dict[str, Any]] = []
        if gpu_names:  # on the server, by Vast's names: the 256 cheapest may hold none of these models
            named = {**query, "gpu_name": {"in": [name.replace(" ", "_") for name in gpu_names]}}
            raws = self._search(named)
        if not raws:  # none, or a name that is part of Vast's ("4090" for "RTX 4090"): matched here
            raws = self._search(query)
        found = []
        for raw in raws:
            offer = _offer(raw, region, spot)
            if offer is None or _country(raw) not in countries or raw.get("rented") is True:
                continue  # rented: Vast does not filter it on the server
            if max_price is not None and (offer.price_per_hour or 0) > max_price:
                continue
            if gpu_names and not any(offer.gpu_name and matches(g, offer.gpu_name) for g in gpu_names):
                continue
            found.append(offer)
        return sorted(found, key=lambda o: (o.price_per_hour or 0.0, -o.reliability, o.offer_id))

    def _search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        response = self._reading(lambda: self._call("search", "POST", "/api/v0/bundles/", query))
        _check(response)
        data = response.json()
        if isinstance(data, dict) and data.get("truncated"):
            log.info("vast cut the search short of its limit", limit=query.get("limit"))
        return _offers(data)

    def rent(self, offer: Offer, request: RentRequest) -> Machine:
        """PUT /api/v0/asks/{id}/: a new instance of the offer running the request's image."""
        body: dict[str, Any] = {
            "client_id": "me",
            "image": request.image,
            # Port requests ride in env as Vast's CLI sends them: "-p 8080:8080" -> "1"; each
            # inside port is mapped to a random outside one, told to the container as VAST_*_PORT_<n>.
            "env": {**request.env, **{f"-p {_mapping(port)}": "1" for port in request.ports}},
            "onstart": request.onstart,
            "disk": request.disk_gb,
            "label": request.label,
            "runtype": "ssh_direct",
        }
        if offer.spot and offer.price_per_hour is not None:
            body["price"] = offer.price_per_hour
        try:
            response = self._create(
                lambda: self._call("create", "PUT", f"/api/v0/asks/{offer.offer_id}/", body)
            )()
        except _Retry as error:
            if error.response.status_code == 429:
                raise ProviderError(f"vast refused the rent: {_describe(error.response)}") from None
            raise ProviderUnavailable(f"vast: {_describe(error.response)}; a machine may exist") from None
        except httpx.TransportError as error:
            raise ProviderUnavailable(
                f"vast unreachable during the rent ({error.__class__.__name__}); a machine may exist"
            ) from None
        data = _json(response)
        if response.status_code in (400, 404, 410) and _gone(data):
            raise OfferGone(f"offer {offer.offer_id} is no longer available")
        if response.status_code >= 400 or not data.get("success"):
            raise ProviderError(f"vast refused the rent of offer {offer.offer_id}: {_describe(response)}")
        machine_id = str(data["new_contract"])
        log.info("rented", offer=offer.offer_id, machine=machine_id, price=offer.price_per_hour)
        return Machine(machine_id, request.label, "loading", price_per_hour=offer.price_per_hour)

    def status(self, machine_id: str) -> Machine | None:
        """GET /api/v0/instances/{id}/."""
        response = self._reading(lambda: self._call("show", "GET", f"/api/v0/instances/{machine_id}/"))
        if response.status_code == 404:
            return None
        _check(response)
        raw = _json(response).get("instances")
        return _machine(raw) if isinstance(raw, dict) and raw else None

    def machines(self, prefix: str) -> list[Machine]:
        """GET /api/v1/instances/, page after page (v0's listing is gone for new accounts): the
        account's instances whose label starts with ``prefix`` (Vast filters labels only by
        equality, so the prefix is matched here)."""
        found: list[Machine] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            params: dict[str, Any] = {"limit": _PAGE}
            if token is not None:
                params["after_token"] = token
            response = self._reading(partial(self._call, "list", "GET", "/api/v1/instances/", params=params))
            _check(response)
            data = _json(response)
            found += [
                _machine(raw)
                for raw in data.get("instances") or []
                if isinstance(raw, dict) and str(raw.get("label") or "").startswith(prefix)
            ]
            token = data.get("next_token") or None
            if token is None:
                return found
        raise ProviderError(f"vast: more than {_MAX_PAGES * _PAGE} instances listed; not all were read")

    def release(self, machine_id: str) -> None:
        """DELETE /api/v0/instances/{id}/: destroyed, billing stops; one already gone is fine. Vast
        answers 404 also to a key that cannot see the instance, so a 404 counts as gone only once
        GET /api/v0/users/current/ shows the key is good: a machine must not be forgotten billing."""
        response = self._reading(lambda: self._call("destroy", "DELETE", f"/api/v0/instances/{machine_id}/"))
        if response.status_code == 404:
            _check(self._reading(lambda: self._call("user", "GET", "/api/v0/users/current/")))
            return
        _check(response)
        log.info("released", machine=machine_id)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(response: httpx.Response) -> str:
    data = _json(response)
    said = data.get("msg") or data.get("error") or response.text[:200]
    return f"HTTP {response.status_code}: {said}"


def _gone(data: dict[str, Any]) -> bool:
    said = f"{data.get('error', '')} {data.get('msg', '')}".lower()
    return any(word in said for word in _GONE)


def _check(response: httpx.Response) -> None:
    if response.status_code in {401, 403}:
        raise ProviderError("vast refused the API key (VAST_API_KEY)")
    if response.status_code >= 400:
        raise ProviderError(f"vast: {_describe(response)}")


def _offers(data: Any) -> list[dict[str, Any]]:
    offers = data.get("offers") if isinstance(data, dict) else None
    if isinstance(offers, dict):  # one offer comes unwrapped in the documented example
        offers = [offers]
    return [o for o in offers or [] if isinstance(o, dict)]


def _country(raw: dict[str, Any]) -> str:
    """Vast's geolocation is "City, CC" (or just "CC")."""
    return str(raw.get("geolocation") or "").rpartition(",")[2].strip().upper()


def _offer(raw: dict[str, Any], region: str, spot: bool) -> Offer | None:
    try:
        price = float(raw["min_bid"] if spot and raw.get("min_bid") is not None else raw["dph_total"])
        return Offer(
            offer_id=str(raw.get("ask_contract_id") or raw["id"]),
            name=f"vast-{raw['id']} {raw.get('geolocation') or ''}".strip(),
            region=region,
            gpu_name=raw.get("gpu_name"),
            num_gpus=int(raw.get("num_gpus") or 0),
            price_per_hour=round(price, 6),
            reliability=float(raw.get("reliability2", raw.get("reliability", 0.0)) or 0.0),
            free_slots=1,
            source="vast",
            spot=spot,
        )
    except (KeyError, TypeError, ValueError):
        return None  # an offer we cannot read is not one we would rent


def _machine(raw: dict[str, Any]) -> Machine:
    port = raw.get("ssh_port")
    price = raw.get("dph_total")
    return Machine(
        machine_id=str(raw["id"]),
        label=raw.get("label"),
        status=str(raw.get("actual_status") or "loading"),
        ssh_host=raw.get("ssh_host") or raw.get("public_ipaddr"),
        ssh_port=int(port) if isinstance(port, int | str) and str(port).isdigit() else None,
        price_per_hour=float(price) if isinstance(price, int | float) else None,
    )


class Pacer:
    """Each endpoint's calls spaced by its interval, across the threads that share the adapter
    (the renter's loop, API requests): a call waits its turn instead of being refused."""

    def __init__(self, intervals: dict[str, float]) -> None:
        self._intervals = intervals
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, endpoint: str) -> None:
        with self._lock:  # a turn is booked under the lock, waited for outside it
            now = time.monotonic()
            turn = max(now, self._next.get(endpoint, now))
            self._next[endpoint] = turn + self._intervals.get(endpoint, 0.0)
        if turn > now:
            time.sleep(turn - now)


def _mapping(port: str) -> str:
    """ "7947/udp" -> "7947:7947/udp": Vast picks the outside port whatever the left side says."""
    inside, _, protocol = port.partition("/")
    return f"{inside}:{inside}" + (f"/{protocol}" if protocol else "")

"""Every Provider adapter passes the offers suite; every Marketplace the rental suite.

Adapters: ``local`` (the pool's own nodes, in a real store) and ``vast`` (the Vast.ai adapter
against the fake marketplace of takeover.testing.fakevast: a paid API cannot run here).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from takeover.domain.errors import OfferGone, ProviderError
from takeover.domain.models import Node, NodeStatus
from takeover.ports import Marketplace, Offer, Provider, RentRequest
from takeover.providers.local import LocalProvider
from takeover.providers.vast import VastMarketplace, paced
from takeover.testing import FakeClock, memory_store
from takeover.testing.fakevast import API_KEY, FakeMachine, FakeVast, offer
from takeover.testing.nat import Nat, inside_address

# The same capacity for both: (name, gpu, count, price) in region "br".
CAPACITY = [("a", "RTX 4090", 1, 0.40), ("b", "RTX 4090", 2, 0.90), ("c", "A100 SXM4", 1, 1.50)]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeVast]:
    offers = [offer(100 + i, gpu, n, price, "Sao Paulo, BR") for i, (_, gpu, n, price) in enumerate(CAPACITY)]
    offers.append(offer(200, "RTX 4090", 1, 0.10, "Oslo, NO"))  # cheap, but in another region
    with FakeVast(tmp_path / "vast", offers) as running:
        yield running


def _vast(fake: FakeVast, key: str = API_KEY) -> VastMarketplace:
    return VastMarketplace(key, fake.url, regions={"br": ("BR",)}, backoff=0.01, intervals=paced(fake.pace))


def _local() -> LocalProvider:
    store, clock = memory_store(), FakeClock()
    for name, gpu, count, price in CAPACITY:
        node = Node(
            uuid4(), name, "br", "http://127.0.0.1", 2, 0, NodeStatus.ONLINE, 90.0,
            labels={"gpu_name": gpu, "num_gpus": count, "price_per_hour": price}, created_at=clock.now(),
        )  # fmt: skip
        store.nodes.add(node, uuid4(), uuid4().hex)
    other = Node(
        uuid4(), "z", "no", "http://127.0.0.1", 2, 0, NodeStatus.ONLINE, 90.0,
        labels={"gpu_name": "RTX 4090", "num_gpus": 1, "price_per_hour": 0.10}, created_at=clock.now(),
    )  # fmt: skip
    store.nodes.add(other, uuid4(), uuid4().hex)
    return LocalProvider(store)


@pytest.fixture(params=["local", "vast"])
def provider(request: pytest.FixtureRequest) -> Provider:
    if request.param == "local":
        return _local()
    return _vast(request.getfixturevalue("fake"))


def _prices(offers: list[Offer]) -> list[float | None]:
    return [o.price_per_hour for o in offers]


def test_offers_are_of_the_region_cheapest_first(provider: Provider) -> None:
    offers = provider.offers("br", None)
    assert _prices(offers) == [0.40, 0.90, 1.50]
    assert {o.region for o in offers} == {"br"}


def test_offers_respect_max_price_and_gpu_names(provider: Provider) -> None:
    assert _prices(provider.offers("br", 1.0)) == [0.40, 0.90]
    assert [o.gpu_name for o in provider.offers("br", None, ["A100"])] == ["A100 SXM4"]
    assert provider.offers("br", 0.30) == []
    assert provider.offers("br", None, ["H100"]) == []


def test_offers_say_where_they_come_from(provider: Provider) -> None:
    sources = {o.source for o in provider.offers("br", None)}
    assert sources == ({"pool"} if isinstance(provider, LocalProvider) else {"vast"})


# The rental suite ---------------------------------------------------------------------------


@pytest.fixture
def market(fake: FakeVast) -> Marketplace:
    return _vast(fake)


def _request(label: str) -> RentRequest:
    return RentRequest("python:3.11-slim", {"X": "1"}, "sleep 60", 16, label)


@pytest.mark.usefixtures("fake")
def test_a_rent_gives_a_machine_found_by_its_label_until_released(market: Marketplace) -> None:
    chosen = market.offers("br", None)[0]
    machine = market.rent(chosen, _request("takeover-one"))
    assert machine.label == "takeover-one"
    assert [m.machine_id for m in market.machines("takeover-")] == [machine.machine_id]
    assert market.machines("other-") == []
    shown = market.status(machine.machine_id)
    assert shown is not None
    assert shown.ssh_host == "127.0.0.1"
    assert shown.ssh_port
    assert chosen.offer_id not in {o.offer_id for o in market.offers("br", None)}  # it left the book
    market.release(machine.machine_id)
    assert market.status(machine.machine_id) is None
    assert market.machines("takeover-") == []
    market.release(machine.machine_id)  # already gone: not an error


def test_the_machine_runs_the_onstart_with_the_env(
    market: Marketplace, fake: FakeVast, tmp_path: Path
) -> None:
    out = tmp_path / "ran"
    request = RentRequest(
        "img", {"GREETING": "hello"}, f'echo "$GREETING" > {out}; sleep 60', 8, "takeover-x"
    )
    machine = market.rent(market.offers("br", None)[0], request)
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.read_text() == "hello\n"
    market.release(machine.machine_id)
    assert all(m.process is None or m.process.poll() is not None for m in fake.machines.values())


def test_an_offer_taken_meanwhile_is_offer_gone(market: Marketplace) -> None:
    chosen = market.offers("br", None)[0]
    market.rent(chosen, _request("takeover-first"))
    with pytest.raises(OfferGone):
        market.rent(chosen, _request("takeover-second"))
    assert len(market.machines("takeover-")) == 1


def test_a_refused_rent_rents_nothing(market: Marketplace, fake: FakeVast) -> None:
    fake.refuse = 1
    with pytest.raises(ProviderError, match="declined"):
        market.rent(market.offers("br", None)[0], _request("takeover-r"))
    assert market.machines("takeover-") == []


def test_rate_limits_are_waited_out(market: Marketplace, fake: FakeVast) -> None:
    fake.throttle = 2
    assert len(market.offers("br", None)) == 3
    fake.throttle = 2
    market.rent(market.offers("br", None)[0], _request("takeover-t"))
    assert len(market.machines("takeover-")) == 1


def test_a_bad_key_is_a_clear_error_that_does_not_show_the_key(fake: FakeVast) -> None:
    with pytest.raises(ProviderError) as refused:
        _vast(fake, key="secret-wrong-key").offers("br", None)
    assert "VAST_API_KEY" in str(refused.value)
    assert "secret-wrong-key" not in str(refused.value)


@pytest.mark.usefixtures("fake")
def test_an_unreachable_marketplace_is_provider_unavailable() -> None:
    from takeover.domain.errors import ProviderUnavailable

    gone = VastMarketplace(API_KEY, "http://127.0.0.1:9", backoff=0.01, timeout=1, intervals={})
    with pytest.raises(ProviderUnavailable):
        gone.offers("br", None)
    with pytest.raises(ProviderUnavailable, match="may exist"):
        gone.rent(Offer("1", "x", "br", None, 0, 0.1, 1.0, 1, "vast"), _request("takeover-u"))


def test_the_listing_reads_every_page_of_the_v1_api(market: Marketplace, fake: FakeVast) -> None:
    """More instances than one page holds (25): every one with the label is found, on the
    listing that new accounts have (the v0 one answers them 410)."""
    book = offer(300, "RTX 4090", 1, 0.2, "Sao Paulo, BR")
    for n in range(60):
        label = f"takeover-{n}" if n % 2 == 0 else f"someone-else-{n}"
        fake.machines[9000 + n] = FakeMachine(
            9000 + n, book, label, "img", {}, "", 10.0, Nat(inside_address(n))
        )
    assert sorted(m.machine_id for m in market.machines("takeover-")) == [
        str(9000 + n) for n in range(0, 60, 2)
    ]
    pages = [call for call in fake.calls if call == ("GET", "/api/v1/instances/")]
    assert len(pages) == 3  # 25, 25, 10
    assert ("GET", "/api/v0/instances/") not in fake.calls
    fake.pace = 0  # the raw calls below come right after the adapter's
    legacy = httpx.get(f"{fake.url}/api/v0/instances/", headers={"Authorization": f"Bearer {API_KEY}"})
    assert legacy.status_code == 410
    bad = httpx.get(
        f"{fake.url}/api/v1/instances/",
        params={"after_token": "nonsense"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert bad.status_code == 400


def test_a_release_with_a_bad_key_is_an_error_not_gone(market: Marketplace, fake: FakeVast) -> None:
    """Vast answers 404 to a key that cannot see the instance: the rental must not be ended as
    if its machine were gone while it bills on."""
    machine = market.rent(market.offers("br", None)[0], _request("takeover-k"))
    with pytest.raises(ProviderError, match="VAST_API_KEY"):
        _vast(fake, key="secret-wrong-key").release(machine.machine_id)
    assert [m.machine_id for m in market.machines("takeover-")] == [machine.machine_id]
    market.release(machine.machine_id)
    market.release(machine.machine_id)  # gone now, with a good key: fine


def test_calls_are_spaced_as_the_marketplace_wants_and_none_is_refused(fake: FakeVast) -> None:
    """Vast refuses a call that comes sooner than its endpoint's interval (429, no Retry-After):
    paced, several rents and lookups in a row are never refused; unpaced, they are."""
    paced = _vast(fake)
    for n in range(3):
        machine = paced.rent(paced.offers("br", None)[0], _request(f"takeover-p{n}"))
        assert paced.status(machine.machine_id) is not None
    assert fake.refused_too_soon == 0
    unpaced = VastMarketplace(
        API_KEY, fake.url, regions={"br": ("BR",)}, backoff=0.0, attempts=1, intervals={}
    )

    def search_five_times() -> None:
        for _ in range(5):
            unpaced.offers("br", None)

    with pytest.raises(ProviderError):
        search_five_times()
    assert fake.refused_too_soon > 0


def test_a_gpu_model_beyond_the_cheapest_offers_is_found_and_the_disk_is_priced_in(tmp_path: Path) -> None:
    """300 cheaper offers of another model: the model is filtered on the server (Vast's names,
    underscores for spaces), not among the 256 cheapest; the rented disk is in the price."""
    book = [offer(1000 + n, "RTX 3090", 1, 0.2, "Sao Paulo, BR") for n in range(300)]
    book.append(offer(2000, "H100 SXM", 1, 2.5, "Sao Paulo, BR", storage_cost=0.73))
    with FakeVast(tmp_path / "big", book) as fake:
        market = VastMarketplace(
            API_KEY, fake.url, regions={"br": ("BR",)}, intervals=paced(fake.pace), disk_gb=100
        )
        [h100] = market.offers("br", 3.0, ["H100 SXM"])
        assert h100.offer_id == "2000"
        assert h100.price_per_hour == pytest.approx(2.5 + 100 * 0.73 / 730)  # $0.10/h for 100 GB
        assert len(market.offers("br", 0.5)) == 256  # the search's own limit, cheapest first

"""Tests of agent.core.charging.auth: authorization policy, the SQLite cache, coalescing."""

import asyncio

import pytest

from agent.core.charging.auth import AuthorizationCache, Authorizer, AuthSource, CsmsUnavailable, Decision
from agent.core.charging.model import AuthorizationStatus, IdTokenInfo
from agent.errors import CallTimeout
from agent.runtime.store import StateStore

ACCEPTED = AuthorizationStatus.ACCEPTED
BLOCKED = AuthorizationStatus.BLOCKED
EXPIRED = AuthorizationStatus.EXPIRED
INVALID = AuthorizationStatus.INVALID
NOW = 1_700_000_000.0


class FakeSettings(dict):
    """The four authorization settings, with OCPP-like defaults we can flip per test."""

    def __init__(self, **overrides):
        super().__init__(
            authorization_cache_enabled=True,
            local_authorize_offline=True,
            local_pre_authorize=False,
            allow_offline_tx_for_unknown_id=False,
        )
        self.update(overrides)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now=NOW):
        self.now = now

    def time(self):
        return self.now


class FakeLocalList:
    """An in-memory Local Authorization List that records what it was asked."""

    def __init__(self, entries=None, *, enabled=True):
        self.entries = {key.upper(): info for key, info in (entries or {}).items()}
        self.enabled = enabled
        self.asked = []

    def lookup(self, id_token, token_type=None):
        self.asked.append(id_token)
        return self.entries.get(id_token)


class FakeCsms:
    """The online callable: answers from a table, records calls, can be held or fail."""

    def __init__(self, answers=None, *, error=None):
        self.answers = answers or {}
        self.error = error
        self.calls = []
        self.gate = None  # an asyncio.Event to hold answers back

    async def __call__(self, id_token):
        self.calls.append(id_token)
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.answers.get(id_token.upper(), IdTokenInfo(INVALID))


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def cache(store, clock):
    return AuthorizationCache(store, clock=clock)


def make_authorizer(cache, clock, *, settings=None, **kwargs):
    return Authorizer(settings=settings or FakeSettings(), cache=cache, clock=clock, **kwargs)


# --- the cache ---------------------------------------------------------------------


def test_cache_put_get_roundtrip_case_insensitive(cache):
    info = IdTokenInfo(ACCEPTED, NOW + 60, "Fleet-1")
    cache.put("abc123", info)
    assert cache.get("ABC123") == info
    assert cache.get("abc123") == info
    assert cache.get("other") is None
    assert len(cache) == 1


def test_cache_entry_past_expiry_reads_expired(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED, NOW + 10, "G"))
    clock.now = NOW + 10
    assert cache.get("TAG") == IdTokenInfo(EXPIRED, NOW + 10, "G")


def test_cache_blocked_entry_past_expiry_stays_blocked(cache, clock):
    cache.put("TAG", IdTokenInfo(BLOCKED, NOW + 10))
    clock.now = NOW + 100
    assert cache.get("TAG").status is BLOCKED


def test_cache_persists_across_reopened_store(db_path, clock):
    with StateStore(db_path) as first:
        AuthorizationCache(first, clock=clock).put("tag", IdTokenInfo(BLOCKED, None, "G"))
    with StateStore(db_path) as second:
        assert AuthorizationCache(second, clock=clock).get("TAG") == IdTokenInfo(BLOCKED, None, "G")


def test_cache_eviction_keeps_the_newest(store, clock):
    cache = AuthorizationCache(store, clock=clock, max_entries=3)
    for name in ("a", "b", "c"):
        cache.put(name, IdTokenInfo(ACCEPTED))
    cache.put("a", IdTokenInfo(ACCEPTED))  # rewriting makes "a" the newest
    cache.put("d", IdTokenInfo(ACCEPTED))
    cache.put("e", IdTokenInfo(ACCEPTED))
    assert len(cache) == 3
    assert [cache.get(n) is not None for n in "abcde"] == [True, False, False, True, True]


def test_cache_eviction_ignores_clock_jumps(store, clock):
    cache = AuthorizationCache(store, clock=clock, max_entries=2)
    cache.put("old", IdTokenInfo(ACCEPTED))
    clock.now = NOW + 3600
    cache.put("mid", IdTokenInfo(ACCEPTED))
    clock.now = NOW - 3600  # the CSMS corrected our clock backwards
    cache.put("new", IdTokenInfo(ACCEPTED))
    assert cache.get("old") is None and cache.get("new") is not None


def test_cache_clear_and_size_bound_validation(store, clock, cache):
    cache.put("a", IdTokenInfo(ACCEPTED))
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        AuthorizationCache(store, clock=clock, max_entries=0)


def test_cache_migration_creates_table_and_eviction_index(store):
    names = {row[0] for row in store.connection.execute("SELECT name FROM sqlite_master")}
    assert {"auth_cache", "auth_cache_seq"} <= names


# --- free vend and online ----------------------------------------------------------


async def test_authorize_free_vend_accepts_without_csms_or_cache(cache, clock):
    csms = FakeCsms()
    auth = make_authorizer(cache, clock, online=csms, free_vend=True)
    decision = await auth.authorize("anything")
    assert decision == Decision(IdTokenInfo(ACCEPTED), AuthSource.FREE_VEND)
    assert csms.calls == [] and len(cache) == 0


async def test_authorize_online_returns_and_caches_csms_answer(cache, clock):
    info = IdTokenInfo(ACCEPTED, NOW + 3600, "GROUP")
    csms = FakeCsms({"TAG1": info})
    auth = make_authorizer(cache, clock, online=csms)
    decision = await auth.authorize("tag1")
    assert decision == Decision(info, AuthSource.CSMS)
    assert decision.source == "csms" and decision.accepted
    assert csms.calls == ["tag1"]  # sent as presented, compared upper-cased
    assert cache.get("TAG1") == info


async def test_authorize_online_asks_csms_even_when_cached_without_pre_authorize(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED))
    csms = FakeCsms({"TAG": IdTokenInfo(BLOCKED)})
    auth = make_authorizer(cache, clock, online=csms)
    assert (await auth.authorize("TAG")).info.status is BLOCKED
    assert cache.get("TAG").status is BLOCKED  # the CSMS's newer verdict replaced it


async def test_authorize_online_concurrent_tx_is_returned_not_cached(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED))
    csms = FakeCsms({"TAG": IdTokenInfo(AuthorizationStatus.CONCURRENT_TX)})
    auth = make_authorizer(cache, clock, online=csms)
    assert (await auth.authorize("TAG")).info.status is AuthorizationStatus.CONCURRENT_TX
    assert cache.get("TAG").status is ACCEPTED


async def test_authorize_online_error_other_than_no_answer_propagates(cache, clock):
    auth = make_authorizer(cache, clock, online=FakeCsms(error=ValueError("bad reply")))
    with pytest.raises(ValueError):
        await auth.authorize("TAG")


async def test_authorize_online_survives_unwritable_cache(store, cache, clock):
    auth = make_authorizer(cache, clock, online=FakeCsms({"TAG": IdTokenInfo(ACCEPTED)}))
    store.close()
    assert (await auth.authorize("TAG")).accepted


# --- LocalPreAuthorize -------------------------------------------------------------


async def test_pre_authorize_accepts_from_cache_without_csms(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED, NOW + 60))
    csms = FakeCsms()
    auth = make_authorizer(cache, clock, online=csms, settings=FakeSettings(local_pre_authorize=True))
    assert await auth.authorize("tag") == Decision(IdTokenInfo(ACCEPTED, NOW + 60), AuthSource.CACHE)
    assert csms.calls == []


async def test_pre_authorize_accepts_from_local_list_without_csms(cache, clock):
    local = FakeLocalList({"TAG": IdTokenInfo(ACCEPTED)})
    csms = FakeCsms()
    settings = FakeSettings(local_pre_authorize=True)
    auth = make_authorizer(cache, clock, online=csms, local_list=local, settings=settings)
    assert (await auth.authorize("tag")).source is AuthSource.LOCAL_LIST
    assert csms.calls == [] and local.asked == ["TAG"]


@pytest.mark.parametrize("entry", [IdTokenInfo(BLOCKED), IdTokenInfo(ACCEPTED, NOW - 1)], ids=["blocked", "expired"])
async def test_pre_authorize_asks_csms_for_entries_not_accepted(cache, clock, entry):
    cache.put("TAG", entry)
    csms = FakeCsms({"TAG": IdTokenInfo(ACCEPTED)})
    auth = make_authorizer(cache, clock, online=csms, settings=FakeSettings(local_pre_authorize=True))
    assert await auth.authorize("TAG") == Decision(IdTokenInfo(ACCEPTED), AuthSource.CSMS)
    assert csms.calls == ["TAG"]


async def test_pre_authorize_does_not_apply_offline_without_local_authorize_offline(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED))
    settings = FakeSettings(local_pre_authorize=True, local_authorize_offline=False)
    auth = make_authorizer(cache, clock, settings=settings)
    assert await auth.authorize("TAG") == Decision(IdTokenInfo(INVALID), AuthSource.OFFLINE_REJECTED)


# --- offline rules -----------------------------------------------------------------


async def test_offline_accepts_cached_token(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED, NOW + 60))
    auth = make_authorizer(cache, clock)
    assert await auth.authorize("tag") == Decision(IdTokenInfo(ACCEPTED, NOW + 60), AuthSource.CACHE)


async def test_offline_expired_cache_entry_is_refused_as_expired(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED, NOW + 60))
    clock.now = NOW + 61
    auth = make_authorizer(cache, clock, settings=FakeSettings(allow_offline_tx_for_unknown_id=True))
    decision = await auth.authorize("TAG")
    assert decision.info.status is EXPIRED and decision.source is AuthSource.CACHE


async def test_offline_unknown_token_rejected_by_default(cache, clock):
    auth = make_authorizer(cache, clock)
    assert await auth.authorize("TAG") == Decision(IdTokenInfo(INVALID), AuthSource.OFFLINE_REJECTED)


async def test_offline_unknown_token_accepted_with_allow_offline_tx_for_unknown_id(cache, clock):
    auth = make_authorizer(cache, clock, settings=FakeSettings(allow_offline_tx_for_unknown_id=True))
    assert await auth.authorize("TAG") == Decision(IdTokenInfo(ACCEPTED), AuthSource.OFFLINE_UNKNOWN)


@pytest.mark.parametrize("local_authorize_offline", [True, False])
async def test_offline_known_blocked_stays_blocked_despite_allow_unknown(cache, clock, local_authorize_offline):
    cache.put("TAG", IdTokenInfo(BLOCKED))
    settings = FakeSettings(allow_offline_tx_for_unknown_id=True, local_authorize_offline=local_authorize_offline)
    auth = make_authorizer(cache, clock, settings=settings)
    assert await auth.authorize("TAG") == Decision(IdTokenInfo(BLOCKED), AuthSource.CACHE)


async def test_offline_without_local_authorize_offline_treats_known_accepted_as_unknown(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED))
    settings = FakeSettings(local_authorize_offline=False)
    assert (await make_authorizer(cache, clock, settings=settings).authorize("TAG")).info.status is INVALID
    settings["allow_offline_tx_for_unknown_id"] = True
    decision = await make_authorizer(cache, clock, settings=settings).authorize("TAG")
    assert decision.source is AuthSource.OFFLINE_UNKNOWN


async def test_offline_local_list_wins_over_cache(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED))
    local = FakeLocalList({"TAG": IdTokenInfo(BLOCKED)})
    auth = make_authorizer(cache, clock, local_list=local)
    assert await auth.authorize("tag") == Decision(IdTokenInfo(BLOCKED), AuthSource.LOCAL_LIST)


async def test_offline_local_list_entry_past_expiry_is_expired(cache, clock):
    local = FakeLocalList({"TAG": IdTokenInfo(ACCEPTED, NOW - 1)})
    auth = make_authorizer(cache, clock, local_list=local)
    assert (await auth.authorize("TAG")).info.status is EXPIRED


async def test_offline_disabled_local_list_is_not_consulted(cache, clock):
    local = FakeLocalList({"TAG": IdTokenInfo(ACCEPTED)}, enabled=False)
    auth = make_authorizer(cache, clock, local_list=local)
    assert (await auth.authorize("TAG")).source is AuthSource.OFFLINE_REJECTED
    assert local.asked == []


@pytest.mark.parametrize("error", [CsmsUnavailable("offline"), CallTimeout("no reply")], ids=["unavailable", "timeout"])
async def test_online_failure_falls_back_to_offline_rules(cache, clock, error):
    cache.put("KNOWN", IdTokenInfo(ACCEPTED))
    csms = FakeCsms(error=error)
    auth = make_authorizer(cache, clock, online=csms, settings=FakeSettings(allow_offline_tx_for_unknown_id=True))
    assert (await auth.authorize("known")).source is AuthSource.CACHE
    assert (await auth.authorize("stranger")).source is AuthSource.OFFLINE_UNKNOWN
    assert csms.calls == ["known", "stranger"]


# --- cache disabled, remember, clear_cache -----------------------------------------


async def test_cache_disabled_stores_nothing_and_offline_is_unknown(cache, clock):
    settings = FakeSettings(authorization_cache_enabled=False, allow_offline_tx_for_unknown_id=True)
    csms = FakeCsms({"TAG": IdTokenInfo(BLOCKED)})
    auth = make_authorizer(cache, clock, online=csms, settings=settings)
    assert (await auth.authorize("TAG")).info.status is BLOCKED
    auth.remember("TAG", IdTokenInfo(BLOCKED))
    assert len(cache) == 0
    auth.online = None
    assert (await auth.authorize("TAG")).source is AuthSource.OFFLINE_UNKNOWN


def test_remember_caches_confirmations_but_not_local_list_tokens(cache, clock):
    local = FakeLocalList({"LISTED": IdTokenInfo(ACCEPTED)})
    auth = make_authorizer(cache, clock, local_list=local)
    auth.remember("listed", IdTokenInfo(BLOCKED))
    auth.remember("other", IdTokenInfo(BLOCKED, None, "G"))
    assert cache.get("LISTED") is None
    assert cache.get("OTHER") == IdTokenInfo(BLOCKED, None, "G")


def test_clear_cache_empties_when_enabled(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED))
    assert make_authorizer(cache, clock).clear_cache() is True
    assert len(cache) == 0


def test_clear_cache_rejected_when_disabled(cache, clock):
    cache.put("TAG", IdTokenInfo(ACCEPTED))
    auth = make_authorizer(cache, clock, settings=FakeSettings(authorization_cache_enabled=False))
    assert auth.clear_cache() is False
    assert len(cache) == 1


# --- groups ------------------------------------------------------------------------


def test_same_group_rules(cache, clock):
    cache.put("CARD-B", IdTokenInfo(ACCEPTED, None, "fleet"))
    cache.put("CARD-C", IdTokenInfo(ACCEPTED, None, "OTHER"))
    local = FakeLocalList({"CARD-D": IdTokenInfo(ACCEPTED, None, "FLEET")})
    auth = make_authorizer(cache, clock, local_list=local)
    assert auth.same_group("card-a", "CARD-A", group_of_a=None)
    assert auth.same_group("CARD-A", "card-b", group_of_a="FLEET")
    assert auth.same_group("CARD-A", "CARD-D", group_of_a="Fleet")
    assert not auth.same_group("CARD-A", "CARD-C", group_of_a="FLEET")
    assert not auth.same_group("CARD-A", "CARD-B", group_of_a=None)
    assert not auth.same_group("CARD-A", "UNKNOWN", group_of_a="FLEET")
    assert auth.same_group("CARD-A", "UNKNOWN", group_of_a="FLEET", group_of_b="fleet")


# --- coalescing --------------------------------------------------------------------


async def test_concurrent_authorize_for_same_token_sends_one_request(cache, clock):
    csms = FakeCsms({"TAG": IdTokenInfo(ACCEPTED)})
    csms.gate = asyncio.Event()
    auth = make_authorizer(cache, clock, online=csms)
    first = asyncio.create_task(auth.authorize("tag"))
    second = asyncio.create_task(auth.authorize("TAG"))
    await asyncio.sleep(0)
    csms.gate.set()
    decisions = await asyncio.gather(first, second)
    assert [d.source for d in decisions] == [AuthSource.CSMS, AuthSource.CSMS]
    assert csms.calls == ["tag"]
    await auth.authorize("TAG")  # the finished request is not reused
    assert len(csms.calls) == 2


async def test_cancelled_caller_does_not_cancel_shared_request(cache, clock):
    csms = FakeCsms({"TAG": IdTokenInfo(ACCEPTED)})
    csms.gate = asyncio.Event()
    auth = make_authorizer(cache, clock, online=csms)
    first = asyncio.create_task(auth.authorize("TAG"))
    second = asyncio.create_task(auth.authorize("TAG"))
    await asyncio.sleep(0)
    first.cancel()
    csms.gate.set()
    assert (await second).accepted
    assert first.cancelled() and csms.calls == ["TAG"]


async def test_concurrent_failure_falls_back_for_every_caller(cache, clock):
    csms = FakeCsms(error=CsmsUnavailable("gone"))
    csms.gate = asyncio.Event()
    auth = make_authorizer(cache, clock, online=csms, settings=FakeSettings(allow_offline_tx_for_unknown_id=True))
    tasks = [asyncio.create_task(auth.authorize("TAG")) for _ in range(3)]
    await asyncio.sleep(0)
    csms.gate.set()
    decisions = await asyncio.gather(*tasks)
    assert {d.source for d in decisions} == {AuthSource.OFFLINE_UNKNOWN}
    assert len(csms.calls) == 1


def test_auth_source_reads_as_its_value():
    assert AuthSource.OFFLINE_UNKNOWN == "offline-unknown"
    assert f"{AuthSource.CACHE}" == str(AuthSource.CACHE) == "cache"


# --- idToken types (2.0.1 keys tokens by text and type; 1.6 by text) ----------------


def test_cache_keys_by_token_and_type(cache):
    card, emaid = IdTokenInfo(ACCEPTED, None, "G"), IdTokenInfo(BLOCKED)
    cache.put("tag", card, "ISO14443")
    cache.put("TAG", emaid, "eMAID")
    assert cache.get("TAG", "ISO14443") == card and cache.get("tag", "eMAID") == emaid
    assert cache.get("TAG", "Central") is None
    assert cache.get("TAG") in (card, emaid)  # a 1.6 idTag has no type: any entry for the text
    cache.put("OLD", card)  # written without a type (1.6): stands for every type
    assert cache.get("OLD", "KeyCode") == card
    cache.put("OLD", emaid, "KeyCode")
    assert cache.get("OLD", "KeyCode") == emaid and cache.get("OLD", "eMAID") == card  # the exact type wins
    assert cache.get("OL") is None and cache.get("OLDER") is None  # a prefix is another token


async def test_authorize_sends_the_type_and_caches_under_it(cache, clock):
    csms = FakeCsms({"TAG": IdTokenInfo(ACCEPTED)})
    auth = make_authorizer(cache, clock, online=csms)
    assert (await auth.authorize("tag", token_type="eMAID")).source is AuthSource.CSMS
    assert csms.calls == ["tag"] and csms.calls[0].type == "eMAID"
    auth.online = None
    assert (await auth.authorize("TAG", token_type="eMAID")).source is AuthSource.CACHE
    assert (await auth.authorize("TAG", token_type="ISO14443")).source is AuthSource.OFFLINE_REJECTED
    assert (await auth.authorize("TAG")).source is AuthSource.CACHE  # 1.6: no type, any entry


async def test_concurrent_authorize_of_one_text_in_two_types_asks_twice(cache, clock):
    csms = FakeCsms({"TAG": IdTokenInfo(ACCEPTED)})
    csms.gate = asyncio.Event()
    auth = make_authorizer(cache, clock, online=csms)
    tasks = [asyncio.create_task(auth.authorize("TAG", token_type=t)) for t in ("ISO14443", "eMAID", "eMAID")]
    await asyncio.sleep(0)
    csms.gate.set()
    await asyncio.gather(*tasks)
    assert sorted(token.type for token in csms.calls) == ["ISO14443", "eMAID"]


def test_local_list_keys_by_type_and_untyped_entries_match_any(store, cache, clock):
    from agent.core.charging.local_list import LocalAuthorizationList

    settings = FakeSettings(local_auth_list_enabled=True, local_auth_list_max_length=10,
                            send_local_list_max_length=10)
    local = LocalAuthorizationList(store, settings=settings)
    entries = [("CARD", IdTokenInfo(ACCEPTED), "ISO14443"), ("card", IdTokenInfo(BLOCKED), "eMAID"),
               ("IDTAG16", IdTokenInfo(ACCEPTED))]  # the last as 1.6 lists it: no type
    assert local.update(1, entries, full=True).value == "Accepted"
    assert local.lookup("card", "ISO14443").status is ACCEPTED and local.lookup("CARD", "eMAID").status is BLOCKED
    assert local.lookup("CARD", "KeyCode") is None and local.lookup("CARD") is not None
    assert local.lookup("IDTAG16", "ISO14443").status is ACCEPTED
    assert local.update(2, [("CARD", None, "eMAID")], full=False).value == "Accepted"  # removes that type only
    assert local.lookup("CARD", "eMAID") is None and local.lookup("CARD", "ISO14443") is not None
    auth = make_authorizer(cache, clock, local_list=local)
    auth.remember("CARD", IdTokenInfo(BLOCKED), token_type="ISO14443")  # listed: not cached
    auth.remember("CARD", IdTokenInfo(BLOCKED), token_type="Central")  # another token: cached
    assert cache.get("CARD", "ISO14443") is None and cache.get("CARD", "Central").status is BLOCKED

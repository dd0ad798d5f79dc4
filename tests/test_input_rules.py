"""Every input rule is a ValidationError at construction (design.md, "Exactly once, in practice").

Overflowing numbers, lone surrogates in any text, control characters in keys and ids, and wrong
types for every keyword argument: never a raw OverflowError, TypeError or a late failure in the
JSON encoder.
"""

from __future__ import annotations

import decimal
import fractions
import math
import socket
import traceback
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dialog360_async import (
    Address,
    Contact,
    ContactsMessage,
    Dialog360Client,
    Email,
    Location,
    LocationMessage,
    Name,
    OnPremiseClient,
    Org,
    PartnerClient,
    Phone,
    RateLimiter,
    RetryPolicy,
    Url,
    ValidationError,
    _json,
)
from dialog360_async import _models as models
from dialog360_async import _validation as v
from dialog360_async._converter import unstructure
from dialog360_async._retry import PairBackoff, RetryBudget

HUGE = 10**400  # float(HUGE) raises OverflowError
ENORMOUS = 10**5000  # repr(ENORMOUS) raises ValueError (int max str digits)
NAME = Name(formatted_name="Ada Lovelace", first_name="Ada")
WHERE = Location(latitude=0, longitude=0)
CARD = Contact(name=NAME)
TO = "+4915112345678"


def _id(value: object) -> str:
    return "10**5000" if value is ENORMOUS else repr(value)  # repr(ENORMOUS) raises


def _rejects(build: Callable[[], object], field: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field
    str(info.value)  # building the message never fails, even for ENORMOUS
    return info.value


# --- 1. numbers ------------------------------------------------------------------------------


class _BrokenReal(fractions.Fraction):
    def __float__(self) -> float:
        raise ValueError("no float for you")


NOT_A_COORDINATE = [
    HUGE,
    -HUGE,
    ENORMOUS,
    fractions.Fraction(HUGE),
    _BrokenReal(1),
    math.inf,
    -math.inf,
    math.nan,
    True,
    False,
    "52.5",
    decimal.Decimal("1.5"),
    None,
    [1.0],
    1j,
]


@pytest.mark.parametrize("bad", NOT_A_COORDINATE, ids=_id)
@pytest.mark.parametrize("field", ["latitude", "longitude"])
def test_coordinates_reject_every_non_number(field: str, bad: object) -> None:
    kwargs: dict[str, Any] = {"latitude": 0, "longitude": 0, field: bad}
    _rejects(lambda: Location(**kwargs), f"Location.{field}")


def test_huge_int_message_is_bounded() -> None:
    error = _rejects(lambda: Location(latitude=ENORMOUS, longitude=0), "Location.latitude")
    assert len(str(error)) < 200


@given(st.one_of(st.integers(), st.floats(), st.fractions(), st.decimals(), st.booleans()))
def test_any_number_is_a_location_or_a_validation_error(value: Any) -> None:
    outcome: Location | ValidationError
    try:
        outcome = Location(latitude=value, longitude=value)
    except ValidationError as error:  # and nothing else: no OverflowError, no TypeError
        outcome = error
    if isinstance(outcome, ValidationError):
        assert outcome.field in {"Location.latitude", "Location.longitude"}
    else:
        assert isinstance(outcome.latitude, float)
        assert math.isfinite(outcome.latitude)
        assert -90 <= outcome.latitude <= 90


@pytest.mark.parametrize("bad", [HUGE, -HUGE, ENORMOUS, math.inf, math.nan, True, "1"], ids=_id)
@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda x: RetryPolicy(base_delay=x), "RetryPolicy.base_delay"),
        (lambda x: RetryPolicy(max_delay=x), "RetryPolicy.max_delay"),
        (lambda x: RetryPolicy(max_retry_after=x), "RetryPolicy.max_retry_after"),
        (lambda x: RetryPolicy(deadline=x), "RetryPolicy.deadline"),
        (lambda x: RateLimiter(x), "RateLimiter.rate"),
        (lambda x: RateLimiter(10, burst=x), "RateLimiter.burst"),
        (lambda x: RateLimiter(10, min_rate=x), "RateLimiter.min_rate"),
        (lambda x: RateLimiter(10).slow_down(x), "RateLimiter.slow_down.factor"),
        (lambda x: PairBackoff(cap=x), "PairBackoff.cap"),
    ],
)
def test_numeric_options_reject_overflow_and_junk(
    build: Callable[[object], object], field: str, bad: object
) -> None:
    _rejects(lambda: build(bad), field)


@pytest.mark.parametrize("bad", [HUGE, -HUGE, ENORMOUS, math.inf, math.nan, 0, -1.5], ids=_id)
def test_client_rate_limit_rejects_overflow(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        Dialog360Client("k", rate_limit=bad)  # type: ignore[arg-type]
    assert info.value.field in {"rate_limit", "RateLimiter.rate"}  # the client's or the limiter's


@pytest.mark.parametrize("offset", [-1, ENORMOUS, 2**31, 1.5, True], ids=_id)
def test_blocklist_offset_rule(offset: object) -> None:
    _rejects(lambda: v.blocklist_window(100, offset), "offset")  # type: ignore[arg-type]


# --- 2. text: lone surrogates ----------------------------------------------------------------

SURROGATE = "\ud800"

# A valid instance of every model, as keyword arguments.
VALID: dict[type, dict[str, Any]] = {
    Location: {"latitude": 0, "longitude": 0},
    Name: {"formatted_name": "Ada", "first_name": "Ada"},
    Address: {},
    Email: {},
    Phone: {},
    Org: {},
    Url: {},
    Contact: {"name": NAME},
    LocationMessage: {"to": TO, "location": WHERE},
    ContactsMessage: {"to": TO, "contacts": [CARD]},
}


def _text_fields() -> list[tuple[type, str]]:
    fields = []
    for name in models.__all__:
        cls = getattr(models, name)
        if not attrs.has(cls):
            continue
        assert cls in VALID, f"add {name} to VALID"
        fields += [(cls, a.name) for a in attrs.fields(cls) if a.init and "str" in str(a.type)]
    return fields


TEXT_FIELDS = _text_fields()


def test_every_text_field_is_covered() -> None:
    # The walk above finds every str field of every model; a new one is checked automatically.
    assert (Name, "formatted_name") in TEXT_FIELDS
    assert (Contact, "birthday") in TEXT_FIELDS
    assert (LocationMessage, "to") in TEXT_FIELDS
    assert len(TEXT_FIELDS) >= 28  # the models of the first release


def _expected_field(cls: type, name: str) -> str:
    return "to" if name == "to" else f"{cls.__name__}.{name}"


@pytest.mark.parametrize("bad", [SURROGATE, "ok \udfff ok", "Ada\ud83d", "\udc80" * 3])
@pytest.mark.parametrize(("cls", "name"), TEXT_FIELDS, ids=lambda x: getattr(x, "__name__", x))
def test_lone_surrogates_refused_in_every_text_field(cls: type, name: str, bad: str) -> None:
    kwargs = {**VALID[cls], name: bad}
    _rejects(lambda: cls(**kwargs), _expected_field(cls, name))


def test_surrogate_message_names_the_character_not_raw() -> None:
    error = _rejects(lambda: Org(company="ACME \ud800 Ltd"), "Org.company")
    assert "U+D800 at index 5" in str(error)
    str(error).encode("utf-8")  # the message itself is loggable


surrogates = st.integers(0xD800, 0xDFFF).map(chr)
tainted = st.tuples(st.text(), surrogates, st.text()).map("".join)
# The text fields without a format of their own (the `_text` validator).
FREE_TEXT = [(c, n) for c, n in TEXT_FIELDS if attrs.fields_dict(c)[n].validator is models._text]


@given(st.sampled_from(FREE_TEXT), st.text())
def test_any_valid_text_is_accepted_and_encodes(field: tuple[type, str], text: str) -> None:
    cls, name = field
    if cls is Name and not text.strip():
        text = "x" + text  # Name's own rules need a non-blank part
    model = cls(**{**VALID[cls], name: text})
    assert getattr(model, name) == text
    _json.dumps(unstructure(model))  # what the client sends: never fails after construction


@given(st.sampled_from(FREE_TEXT), tainted)
def test_any_text_with_a_surrogate_is_refused(field: tuple[type, str], text: str) -> None:
    cls, name = field
    _rejects(lambda: cls(**{**VALID[cls], name: text}), f"{cls.__name__}.{name}")


class _Text(str):
    pass


def test_str_subclasses_are_checked_too() -> None:
    assert Url(url=_Text("https://example.com")).url == "https://example.com"
    _rejects(lambda: Url(url=_Text(SURROGATE)), "Url.url")


@pytest.mark.parametrize("bad", [5, b"bytes", ENORMOUS, ["x"]], ids=_id)
def test_text_fields_reject_non_strings(bad: object) -> None:
    _rejects(lambda: Location(latitude=0, longitude=0, name=bad), "Location.name")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [SURROGATE, 5, "x" * 60])
def test_reason_rule(bad: object) -> None:
    _rejects(lambda: v.reason(bad), "reason")  # type: ignore[arg-type]


# --- 2. keys, tokens and ids: control characters ---------------------------------------------

CONTROL = ["\r", "\n", "\r\n", "\x00", "\t", "\x1b", "\x7f", "\x85", SURROGATE]
KEY = "k3y-s3cr3t-0123456789abcdef"


@pytest.mark.parametrize("char", CONTROL, ids=_id)
def test_token_rule(char: str) -> None:
    secret = KEY[:5] + char + KEY[5:]
    error = _rejects(lambda: v.token(secret, "api_key"), "api_key")
    assert f"U+{ord(char[0]):04X} at index 5" in str(error)
    assert KEY[:5] not in str(error) and KEY[5:] not in str(error)  # never shows the key


@pytest.mark.parametrize("bad", ["", "   ", None, 5, b"key"], ids=_id)
def test_token_must_be_a_non_empty_string(bad: object) -> None:
    _rejects(lambda: v.token(bad, "token"), "token")


def test_token_accepts_printable_keys() -> None:
    assert v.token(KEY, "api_key") == KEY
    assert v.token("ключ-ü", "api_key") == "ключ-ü"


@pytest.mark.parametrize("char", CONTROL, ids=_id)
def test_partner_id_rule(char: str) -> None:
    _rejects(lambda: PartnerClient(partner_id=f"ex{char}amplePA", api_key="k"), "partner_id")


@pytest.mark.parametrize("char", CONTROL, ids=_id)
@pytest.mark.parametrize(
    "build",
    [
        lambda key: Dialog360Client(key),
        lambda key: OnPremiseClient(key),
        lambda key: PartnerClient(partner_id="examplePA", api_key=key),
    ],
)
def test_api_key_control_characters_refused(build: Callable[[str], object], char: str) -> None:
    # Needs _base.secret() to call _validation.token (see the H2 report).
    secret = KEY + char
    error = _rejects(lambda: build(secret), "api_key")
    assert KEY not in str(error) and KEY not in repr(error)


@pytest.mark.parametrize("char", CONTROL, ids=_id)
def test_partner_token_control_characters_refused(char: str) -> None:
    _rejects(lambda: PartnerClient(partner_id="examplePA", token=f"t{char}k"), "token")


def _leaks(error: BaseException, key: str) -> list[str]:
    """Where ``key`` shows in the error or in the locals of its traceback's frames (what error
    trackers such as Sentry record)."""
    texts = [str(error), repr(error), repr(error.args)]
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        texts += [f"{frame.f_code.co_qualname}.{n} = {x!r}" for n, x in frame.f_locals.items()]
        tb = tb.tb_next
    texts += traceback.TracebackException.from_exception(error, capture_locals=True).format()
    return [t for t in texts if key in t]


@pytest.mark.parametrize(
    "options",
    [
        {"partner_id": "ex\namplePA"},
        {"partner_id": 5},
        {"token": "t0ken"},
        {"timeout": -1},
        {"base_url": "http://example.com"},
        {"retry": 3},
    ],
    ids=str,
)
def test_no_frame_of_a_partner_constructor_error_holds_the_key(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        PartnerClient(**{"partner_id": "examplePA", "api_key": KEY, **options})
    assert info.value.__traceback__ is not None
    assert _leaks(info.value, KEY) == []


@pytest.mark.parametrize("option", ["api_key", "token"])
def test_no_frame_of_a_bad_key_error_holds_the_key(option: str) -> None:
    # Needs _base.secret() to drop its reference before raising (see the H2 report).
    with pytest.raises(ValidationError) as info:
        PartnerClient(partner_id="examplePA", **{option: KEY + "\r\n"})  # type: ignore[arg-type]
    assert _leaks(info.value, KEY) == []


# --- 3. wrong types for every keyword argument -----------------------------------------------

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.just(HUGE),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-1),
)
not_callable = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats())
# Values that are right for one option and junk for another are filtered per option below.
RETRY_OPTIONS: dict[str, Callable[[Any], bool]] = {
    "max_attempts": lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 1,
    "base_delay": lambda x: False,
    "max_delay": lambda x: False,
    "max_retry_after": lambda x: False,
    "deadline": lambda x: x is None,
    "retry_ambiguous": lambda x: isinstance(x, bool),
}


@given(st.sampled_from(sorted(RETRY_OPTIONS)), junk)
def test_retry_policy_rejects_junk_in_every_option(option: str, value: Any) -> None:
    assume(not RETRY_OPTIONS[option](value))
    _rejects(lambda: RetryPolicy(**{option: value}), f"RetryPolicy.{option}")


@given(st.sampled_from(["sleep", "clock", "random"]), not_callable)
def test_retry_policy_injectables_must_be_callable(option: str, value: Any) -> None:
    _rejects(lambda: RetryPolicy(**{option: value}), f"RetryPolicy.{option}")


def test_retry_policy_callable_checks_hold_for_evolve_too() -> None:
    policy = RetryPolicy()
    _rejects(lambda: attrs.evolve(policy, sleep="x"), "RetryPolicy.sleep")  # type: ignore[arg-type]


@given(st.sampled_from(["clock", "sleep"]), not_callable)
def test_rate_limiter_injectables_must_be_callable(option: str, value: Any) -> None:
    _rejects(lambda: RateLimiter(10, **{option: value}), f"RateLimiter.{option}")


@given(junk)
def test_rate_limiter_rejects_junk(value: Any) -> None:
    _rejects(lambda: RateLimiter(value), "RateLimiter.rate")
    _rejects(lambda: RateLimiter(10, min_rate=value), "RateLimiter.min_rate")
    if value is not None:  # burst=None is the default burst
        _rejects(lambda: RateLimiter(10, burst=value), "RateLimiter.burst")


@given(not_callable)
def test_pair_backoff_clock_must_be_callable(value: Any) -> None:
    _rejects(lambda: PairBackoff(clock=value), "PairBackoff.clock")


@given(st.sampled_from(["capacity", "retry_cost", "timeout_cost", "no_retry_refund"]), junk)
def test_retry_budget_rejects_junk(option: str, value: Any) -> None:
    assume(not (type(value) is int and value >= 0))  # HUGE is a fine (if generous) count
    _rejects(lambda: RetryBudget(**{option: value}), f"RetryBudget.{option}")


@pytest.mark.parametrize("bad", [None, 5, "", " ", "a\nb", SURROGATE, b"PA"], ids=_id)
def test_partner_id_types(bad: object) -> None:
    _rejects(lambda: PartnerClient(partner_id=bad, api_key="k"), "partner_id")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [5, b"key", ["key"], "", "  "], ids=_id)
def test_partner_credentials_types(bad: object) -> None:
    _rejects(lambda: PartnerClient(partner_id="examplePA", api_key=bad), "api_key")  # type: ignore[arg-type]
    _rejects(lambda: PartnerClient(partner_id="examplePA", token=bad), "token")  # type: ignore[arg-type]


# Method arguments are checked before any I/O: the clients point at a closed port with retries
# off, so an attempted request would surface as a TransportError instead.
def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


ONPREM_CALLS: list[tuple[Callable[[OnPremiseClient], Any], str]] = [
    (lambda c: c.report_user(TO, block="yes"), "block"),  # type: ignore[arg-type]
    (lambda c: c.report_user(TO, block=1), "block"),  # type: ignore[arg-type]
    (lambda c: c.report_user(TO, message_id=f"wamid.{SURROGATE}"), "message_id"),
    (lambda c: c.report_user(TO, reason=SURROGATE), "reason"),
    (lambda c: c.block_users(TO, reason=f"spam{SURROGATE}"), "reason"),
    (lambda c: c.check_contacts(TO, wait="no"), "wait"),  # type: ignore[arg-type]
    (lambda c: c.check_contacts(TO, force_check=0), "force_check"),  # type: ignore[arg-type]
    (lambda c: c.block_users(4915112345678), "users"),  # type: ignore[arg-type]
    (lambda c: c.unblock_users(None), "users"),  # type: ignore[arg-type]
    (lambda c: c.block_users({TO: 1}), "users"),
    (lambda c: c.get_blocklist(offset=ENORMOUS), "offset"),
]


@pytest.mark.parametrize(("call", "field"), ONPREM_CALLS, ids=[f for _, f in ONPREM_CALLS])
async def test_onprem_method_arguments(call: Callable[[OnPremiseClient], Any], field: str) -> None:
    async with OnPremiseClient("k", base_url=_closed_port(), retry=None) as client:
        with pytest.raises(ValidationError) as info:
            await call(client)
    assert info.value.field == field


@pytest.mark.parametrize("bad", [None, 5, "", "ch\r\n", SURROGATE])
async def test_partner_channel_id(bad: object) -> None:
    async with PartnerClient(
        partner_id="examplePA", api_key="k", base_url=_closed_port(), retry=None
    ) as client:
        with pytest.raises(ValidationError) as info:
            await client.block_users(bad, [TO])  # type: ignore[arg-type]
    assert info.value.field == "channel_id"


async def test_cloud_block_users_needs_an_iterable() -> None:
    async with Dialog360Client("k", base_url=_closed_port(), retry=None) as client:
        for bad in (4915112345678, None, b"4915112345678"):
            with pytest.raises(ValidationError) as info:
                await client.block_users(bad)  # type: ignore[arg-type]
            assert info.value.field == "users"

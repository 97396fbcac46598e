"""Read OCM's free-text usage cost ("$0.25/kWh + $0.25/min", "5,60€/hour", "Free") into a structured Price.

The text is split into tokens and each amount is read with what surrounds it:

    [currency] AMOUNT [currency | subunit] [connector] [multiplier] UNIT

- currency: a symbol (€ $ £ ¥) or an ISO code or word (EUR, NZD, AED, euro, kr, ...); `$` and `kr` take the
  country's dollar / crown when it has one. A subunit (c, ct, cents, p, fils, øre) divides by 100.
  With no currency in the text, the country's currency is used (COUNTRY_CURRENCY), else null.
- UNIT: kWh -> per_kwh; min/minute -> per_minute; h/hour -> per_minute / 60; session/charge/connection ->
  per_session. `4€/10minutes` divides by the multiplier (0.4 per minute).
- An amount counts only with a unit, and either a currency or an explicit `/` or `per` ("0.00/kWh"), so
  "3kW", "max. 1 uur" or "Free for 2 hours" are not prices. An amount without a unit ("4€", "100 AED") is
  not readable on its own.
- When a part appears more than once (AC and DC tariffs), the first one is kept.
- "free" (gratis, gratuit, kostenlos, no charge; not "not free") with no positive amount -> free=True; a
  text whose amounts are all zero is free as well.

Anything else is unreadable: `parse_usage_cost` returns None and the raw text stays in `usage_cost`.
"""

import re
from functools import lru_cache

from voltway.stations.schemas import Price

# ISO 3166 country -> ISO 4217 currency, for texts that give an amount without a currency.
COUNTRY_CURRENCY: dict[str, str] = {
    **dict.fromkeys(
        "AD AT BE CY DE EE ES FI FR GR HR IE IT LT LU LV MC ME MT NL PT SI SK SM VA XK".split(), "EUR"
    ),
    "AE": "AED", "AU": "AUD", "BB": "BBD", "BG": "BGN", "BR": "BRL", "CA": "CAD", "CH": "CHF", "CL": "CLP",
    "CN": "CNY", "CZ": "CZK", "DK": "DKK", "GB": "GBP", "HK": "HKD", "HU": "HUF", "IL": "ILS", "IN": "INR",
    "IS": "ISK", "JP": "JPY", "KR": "KRW", "LI": "CHF", "MX": "MXN", "MY": "MYR", "NO": "NOK", "NZ": "NZD",
    "PL": "PLN", "PR": "USD", "RO": "RON", "RS": "RSD", "SA": "SAR", "SE": "SEK", "SG": "SGD", "TH": "THB",
    "TR": "TRY", "TW": "TWD", "UA": "UAH", "US": "USD", "ZA": "ZAR",
}  # fmt: skip

ISO_CURRENCIES = frozenset(COUNTRY_CURRENCY.values()) | {"USD", "EUR", "GBP"}
CURRENCY_WORDS: dict[str, str] = {
    "€": "EUR", "euro": "EUR", "euros": "EUR", "£": "GBP", "¥": "JPY", "yen": "JPY", "円": "JPY",
}  # fmt: skip
DOLLAR_SIGNS = frozenset({"$"})
CROWN_WORDS = frozenset({"kr", "kr.", "kn"})
# Subunits (1/100) and the currency they imply when the country does not say.
SUBUNITS: dict[str, str | None] = {
    "c": None, "ct": None, "cts": None, "cent": None, "cents": None, "¢": None,
    "p": "GBP", "pence": "GBP", "fils": "AED", "øre": None, "ore": None, "rappen": "CHF", "rp": "CHF",
}  # fmt: skip

KWH_UNITS = frozenset({"kwh", "kw/h", "kwhr"})
MINUTE_UNITS = frozenset({"min", "mins", "min.", "minute", "minutes", "minuten", "minuto", "minutos", "minuut"})
HOUR_UNITS = frozenset({"h", "hr", "hrs", "hour", "hours", "heure", "heures", "stunde", "std", "std.", "uur"})
SESSION_UNITS = frozenset({"session", "sessions", "charge", "charging", "connection", "use", "transaction", "visit",
                           "ladevorgang", "recharge", "plug-in"})  # fmt: skip
# Words that may stand between an amount and its unit ("5€ for a full charge", "29 fils per kWh").
CONNECTORS = frozenset({"/", "per", "a", "an", "each", "for", "pro", "par", "full", "one", "the", "je"})
EXPLICIT = frozenset({"/", "per"})
FREE_WORDS = frozenset({"free", "gratis", "gratuit", "gratuite", "kostenlos", "gratuito", "gratuita"})
NEGATIONS = frozenset({"not", "non", "nicht", "no"})

TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[.,]\d+|kw/h|[€$£¥¢円/;+()]|[^\W\d_]+\.?")


def _number(token: str) -> float:
    if "," in token and "." in token:  # 1,234.50 or 1.234,50: the last separator is the decimal one
        decimal = "," if token.rfind(",") > token.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        token = token.replace(thousands, "").replace(decimal, ".")
    return float(token.replace(",", "."))


def _is_number(token: str) -> bool:
    return token[0].isdigit() or (len(token) > 1 and token[0] in ".," and token[1].isdigit())


def _currency(token: str, country: str | None) -> str | None:
    """The ISO currency a token names, or None when it names none."""
    local = COUNTRY_CURRENCY.get(country or "")
    if token in DOLLAR_SIGNS:
        return local if local and local.endswith("D") else "USD"
    if token in CROWN_WORDS:
        return local if local in {"DKK", "NOK", "SEK", "ISK"} else None
    if token in CURRENCY_WORDS:
        return CURRENCY_WORDS[token]
    upper = token.upper()
    return upper if upper in ISO_CURRENCIES else None


def _names_currency(token: str) -> bool:
    return token in DOLLAR_SIGNS or token in CROWN_WORDS or token in CURRENCY_WORDS or token.upper() in ISO_CURRENCIES


@lru_cache(maxsize=8192)  # the same texts come back again and again ("Free"); callers do not mutate the Price
def parse_usage_cost(text: str | None, country: str | None = None) -> Price | None:
    """The price a usage cost text states, or None when it cannot be read (see the module docstring)."""
    if not text:
        return None
    tokens = TOKEN.findall(text.lower())
    parts: dict[str, float] = {}
    currency: str | None = None
    subunit_currency: str | None = None
    for i, token in enumerate(tokens):
        if not _is_number(token):
            continue
        amount = _number(token)
        named = i > 0 and _names_currency(tokens[i - 1])
        found = _currency(tokens[i - 1], country) if named else None
        j = i + 1
        if j < len(tokens) and _names_currency(tokens[j]):
            named, found = True, found or _currency(tokens[j], country)
            j += 1
        elif j < len(tokens) and tokens[j] in SUBUNITS:
            named, amount = True, amount / 100
            subunit_currency = subunit_currency or SUBUNITS[tokens[j]]
            j += 1
        explicit = False
        while j < len(tokens) and tokens[j] in CONNECTORS:
            explicit = explicit or tokens[j] in EXPLICIT
            j += 1
        multiplier = 1.0
        if j + 1 < len(tokens) and _is_number(tokens[j]) and explicit:
            multiplier = _number(tokens[j]) or 1.0
            j += 1
        unit = tokens[j] if j < len(tokens) else None
        if unit is None or not (named or explicit):
            continue
        if unit in KWH_UNITS:
            part, value = "per_kwh", amount / multiplier
        elif unit in MINUTE_UNITS:
            part, value = "per_minute", amount / multiplier
        elif unit in HOUR_UNITS:
            part, value = "per_minute", amount / multiplier / 60
        elif unit in SESSION_UNITS:
            part, value = "per_session", amount
        else:
            continue
        parts.setdefault(part, round(value, 6))
        currency = currency or found
    said_free = any(
        t in FREE_WORDS and (i == 0 or tokens[i - 1] not in NEGATIONS) for i, t in enumerate(tokens)
    ) or "no charge" in " ".join(tokens)
    if not parts:
        return Price(free=True) if said_free else None
    free = all(v == 0 for v in parts.values())
    currency = currency or subunit_currency or COUNTRY_CURRENCY.get(country or "")
    return Price(currency=currency, free=free, **parts)

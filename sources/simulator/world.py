"""The simulated world's fixed data: cities, fraud hubs, merchant categories, channel mixes, RNG streams."""

from __future__ import annotations

import numpy as np

POS, ECOM, ATM, MOTO = 0, 1, 2, 3  # indices into sources.contract.CHANNELS
MS_PER_DAY = 86_400_000

# (name, lat, lon, currency, weight)
CITIES: tuple[tuple[str, float, float, str, float], ...] = (
    ("Paris", 48.8566, 2.3522, "EUR", 0.14),
    ("Lyon", 45.7640, 4.8357, "EUR", 0.05),
    ("Marseille", 43.2965, 5.3698, "EUR", 0.04),
    ("Toulouse", 43.6047, 1.4442, "EUR", 0.03),
    ("Bordeaux", 44.8378, -0.5792, "EUR", 0.03),
    ("Lille", 50.6292, 3.0573, "EUR", 0.03),
    ("Nantes", 47.2184, -1.5536, "EUR", 0.03),
    ("Brussels", 50.8503, 4.3517, "EUR", 0.05),
    ("Amsterdam", 52.3676, 4.9041, "EUR", 0.05),
    ("Frankfurt", 50.1109, 8.6821, "EUR", 0.04),
    ("Berlin", 52.5200, 13.4050, "EUR", 0.06),
    ("Munich", 48.1351, 11.5820, "EUR", 0.04),
    ("Milan", 45.4642, 9.1900, "EUR", 0.05),
    ("Madrid", 40.4168, -3.7038, "EUR", 0.05),
    ("Barcelona", 41.3874, 2.1686, "EUR", 0.04),
    ("Lisbon", 38.7223, -9.1393, "EUR", 0.03),
    ("Vienna", 48.2082, 16.3738, "EUR", 0.03),
    ("Zurich", 47.3769, 8.5417, "CHF", 0.03),
    ("London", 51.5074, -0.1278, "GBP", 0.04),
    ("Stockholm", 59.3293, 18.0686, "SEK", 0.02),
    ("Copenhagen", 55.6761, 12.5683, "DKK", 0.02),
    ("Warsaw", 52.2297, 21.0122, "PLN", 0.02),
    ("Prague", 50.0755, 14.4378, "CZK", 0.02),
)
# Where fraudsters' devices / bots appear to connect from.
FRAUD_HUBS: tuple[tuple[float, float], ...] = (
    (6.5244, 3.3792),  # Lagos
    (44.4268, 26.1025),  # Bucharest
    (41.0082, 28.9784),  # Istanbul
    (50.4501, 30.5234),  # Kyiv
    (-23.5505, -46.6333),  # Sao Paulo
    (40.7128, -74.0060),  # New York
    (1.3521, 103.8198),  # Singapore
    (14.5995, 120.9842),  # Manila
    (55.7558, 37.6173),  # Moscow
    (19.0760, 72.8777),  # Mumbai
)
# Per channel: (mcc, weight, amount factor).
MCC_CATALOGUE: dict[int, tuple[tuple[str, float, float], ...]] = {
    POS: (
        ("5411", 0.30, 1.0),  # grocery stores
        ("5812", 0.14, 1.1),  # restaurants
        ("5814", 0.12, 0.35),  # fast food
        ("5541", 0.10, 1.3),  # fuel
        ("5912", 0.07, 0.6),  # pharmacies
        ("5311", 0.06, 1.6),  # department stores
        ("5651", 0.08, 1.8),  # clothing
        ("5732", 0.04, 3.0),  # electronics
        ("5942", 0.03, 0.7),  # books
        ("7011", 0.02, 3.5),  # hotels
        ("4121", 0.04, 0.8),  # taxis
    ),
    ECOM: (
        ("5999", 0.25, 1.0),  # misc retail
        ("5732", 0.10, 2.5),  # electronics
        ("5815", 0.18, 0.25),  # digital goods
        ("4899", 0.10, 0.4),  # subscriptions / streaming
        ("5311", 0.15, 1.2),  # marketplaces
        ("4722", 0.08, 4.0),  # travel agencies
        ("5691", 0.14, 1.3),  # clothing
    ),
    ATM: (("6011", 1.0, 1.0),),
    MOTO: (
        ("5964", 0.5, 1.3),  # catalogue merchants
        ("4722", 0.3, 3.0),  # travel
        ("5999", 0.2, 1.0),  # misc
    ),
}
TERMINAL_CHANNEL_SHARES = (0.78, 0.14, 0.06, 0.02)  # pos, ecom, atm, moto
CUSTOMER_CHANNEL_MIX = (0.62, 0.27, 0.08, 0.03)
ECOM_MERCHANT_CURRENCIES = (("EUR", 0.72), ("USD", 0.14), ("GBP", 0.09), ("CHF", 0.03), ("SEK", 0.02))
ATM_AMOUNTS = np.array([20.0, 40.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0])
N_USUAL = {POS: 8, ECOM: 5, ATM: 2, MOTO: 1}
N_NEAR = {POS: 40, ATM: 5}
RNG_TAGS = {
    "population": 1,
    "genuine": 2,
    "compromise": 3,
    "ato": 4,
    "card_testing": 5,
    "outlier": 6,
    "ids": 7,
    "labels": 8,
    "lateness": 9,
    "compromise_hit": 10,
}


def rng_for(seed: int, tag: str, ordinal: int = 0) -> np.random.Generator:
    """The random stream of one concern (``tag``) for one day ``ordinal`` (or 0): independent of the others."""
    return np.random.default_rng([seed, RNG_TAGS[tag], ordinal])

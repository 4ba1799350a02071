"""Seeded, vectorised card-transaction simulator producing contract-shaped data.

Parts: :mod:`~sources.simulator.world` (fixed world data), :mod:`~sources.simulator.config`,
:mod:`~sources.simulator.population` (customers, terminals, calibration), :mod:`~sources.simulator.scenarios`
(one local day: genuine activity and fraud), :mod:`~sources.simulator.frames` (contract frames),
:mod:`~sources.simulator.merge` (the live stream in emission order) and :mod:`~sources.simulator.core`
(:class:`Simulator`, tying them together).

The simulated world is a deterministic function of :class:`SimulatorConfig`
(including ``seed``): a population of customers and terminals, and one block
of transactions per *local* calendar day (in ``config.timezone``), each drawn
from its own random stream keyed by ``(seed, day)``. :meth:`Simulator.history`
and :meth:`Simulator.stream` are two views of that same world, so a given
seed always yields the same transactions for the same period, whichever way
(and in whatever order) they are asked for.

Population
    Customers live around real European cities (home lat/lon), have a spending
    profile (mean amount, transactions per day, channel mix), a preferred
    currency (their city's: mostly EUR), one Luhn-valid 16-digit card, one or
    two devices, a few usual POS terminals and ATMs near home and a few usual
    online merchants. Terminals have a channel (pos/ecom/atm/moto), an MCC
    (which scales amounts), a location, a currency and a popularity.

Genuine activity
    Poisson number of transactions per customer and day, scaled by a weekly
    cycle; local time of day from an hourly profile (few at night); mostly on
    usual terminals, some exploration nearby, rare travel far away.

Fraud scenarios (``fraud_scenario`` codes, see :class:`FraudScenario`)
    1. amount outliers: genuine-looking transactions with 4-10x the customer's
       usual amount;
    2. compromised terminals: for 3-14 days, 90% of the transactions of a
       compromised POS terminal/ATM are fraud (terminals picked in proportion
       to their traffic);
    3. account takeover: a burst of 3-10 transactions within hours, at new
       online merchants from a new device geolocated far from home (or at POS
       terminals in another city), with 2-6x larger amounts;
    4. card testing: a burst of 5-20 tiny online (sometimes MOTO) payments
       within minutes, from a bot device.

    Per-scenario rates are fractions of all transactions (defaults sum to
    1%); scenarios 1-2 relabel genuine transactions, 3-4 add transactions.
    Episode counts per day follow a seeded low-discrepancy schedule rather
    than Poisson draws, so a few weeks already match the configured rates
    (30 days x 2,000 customers: overall rate within ~10% of the config).

Labels
    Every transaction gets exactly one label: frauds at ``event_time`` + a
    chargeback delay (default uniform 1-7 days), genuine transactions at
    ``event_time`` + a maturity delay (default fixed 7 days). A transaction is
    *matured* once its label is reported, so ``labels.reported_at <= t`` tells
    exactly which transactions are known at ``t``. Keep the fraud delays at or
    below the genuine maturity delay (the defaults do): otherwise "still
    unlabelled after the maturity delay" would leak "fraud".
"""

from sources.contract import FraudScenario
from sources.simulator.config import DelaySpec, SimulatorConfig
from sources.simulator.core import Simulator
from sources.simulator.merge import StreamEvent
from sources.simulator.util import luhn_check_digit, luhn_valid

__all__ = [
    "DelaySpec",
    "FraudScenario",
    "Simulator",
    "SimulatorConfig",
    "StreamEvent",
    "luhn_check_digit",
    "luhn_valid",
]

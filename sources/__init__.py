"""Transaction sources: the event contract, a simulator and the handbook data.

Pure pandas/numpy code (no Spark, no Kafka): :mod:`sources.contract` (event
contract v1), :mod:`sources.simulator` (seeded card-transaction simulator),
:mod:`sources.handbook` (benchmark data validation and conversion),
:mod:`sources.fixtures` (tiny handbook-schema files for tests).
"""

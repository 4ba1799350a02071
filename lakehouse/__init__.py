"""Lakehouse edge: table contracts, the Spark session factory, Delta and Kafka I/O, the broker."""

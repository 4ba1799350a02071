"""Data quality: expectation suites (conf/expectations) compiled to row rules, validation, reports."""

"""The streaming pipeline: keyed feature state, the hot path to gold and the scores topic, the cold path."""

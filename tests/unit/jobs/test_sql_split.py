"""Statement splitting of `aegis sql` / `aegis sql-shell` (sqlparse): quotes, comments, unfinished rest."""

from __future__ import annotations

from jobs.sql import split_statements


def test_semicolons_inside_quotes_and_comments_do_not_split() -> None:
    text = "select ';' as a; -- done;\nselect \"a;b\" from t /* ; */;\nselect 'it''s';"
    assert split_statements(text) == (["select ';' as a", 'select "a;b" from t', "select 'it''s'"], "")


def test_the_unfinished_rest_is_kept_raw_for_the_next_line() -> None:
    statements, rest = split_statements("select 1;\nselect *\n")
    assert statements == ["select 1"] and rest == "select *\n"
    assert split_statements(rest + "from aegis.scores;\n") == (["select *\nfrom aegis.scores"], "")


def test_comments_and_blank_statements_alone_are_nothing() -> None:
    assert split_statements("-- a comment\n  ;;\n") == ([], "")

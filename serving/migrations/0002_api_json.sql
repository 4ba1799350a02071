-- The API's response bodies are built by PostgreSQL (json keeps key order), so the API passes text through.

-- JSON has no NaN or infinity: they are served as null
CREATE FUNCTION api_finite(double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN $1 IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN NULL ELSE $1 END $$;

-- the API's time format: 2024-05-01T08:03:00.000000Z
CREATE FUNCTION api_time(timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_char($1 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- one score as the API's Score object
CREATE FUNCTION api_score(s scores) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object(
        'transaction_id', s.transaction_id, 'customer_id', s.customer_id, 'terminal_id', s.terminal_id,
        'event_time', api_time(s.event_time), 'amount', api_finite(s.amount), 'score', api_finite(s.score),
        'decision', s.decision, 'model_name', s.model_name, 'model_version', s.model_version,
        'policy_version', s.policy_version, 'feature_version', s.feature_version, 'top_reasons', s.top_reasons,
        'source', s.source, 'scored_at', api_time(s.scored_at)) $$;

-- feature name -> value in model-input order
CREATE FUNCTION api_values(names text[], feature_values double precision[]) RETURNS json
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(json_object_agg(coalesce(n, 'f' || (o - 1)), api_finite(v) ORDER BY o), '{}'::json)
          FROM unnest(names, feature_values) WITH ORDINALITY AS u(n, v, o) $$;

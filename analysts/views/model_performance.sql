-- aegis.model_performance (columns and description: analysts/views.py). Placeholders: {db} the database, {known} _known.sql,
-- {matured} the label-maturity predicate on a scores row.
WITH {known},
labelled AS (
    SELECT
        s.event_date, s.model_name, s.model_version, s.score,
        CASE WHEN s.decision IN ('review', 'block') THEN 1 ELSE 0 END AS flagged,
        CASE WHEN s.{matured} THEN COALESCE(k.is_fraud, 0) END AS label
    FROM {db}.scores s LEFT JOIN known k ON s.transaction_id = k.transaction_id
),
volume AS (
    SELECT event_date, model_name, model_version,
        COUNT(*) AS scored, AVG(score) AS mean_score, SUM(flagged) AS flagged
    FROM labelled
    GROUP BY event_date, model_name, model_version
),
ranked AS (
    SELECT event_date, model_name, model_version, score, flagged, label,
        RANK() OVER (PARTITION BY event_date, model_name, model_version ORDER BY score)
        + (COUNT(*) OVER (PARTITION BY event_date, model_name, model_version, score) - 1) / 2 AS score_rank
    FROM labelled
    WHERE label IS NOT NULL
),
quality AS (
    SELECT event_date, model_name, model_version,
        COUNT(*) AS matured,
        SUM(label) AS frauds,
        SUM(1 - label) AS genuine,
        AVG(CASE WHEN label = 1 THEN score END) AS mean_score_fraud,
        AVG(CASE WHEN label = 0 THEN score END) AS mean_score_genuine,
        SUM(CASE WHEN label = 1 THEN score_rank ELSE 0 END) AS fraud_rank_sum,
        SUM(flagged) AS flagged_matured,
        SUM(flagged * label) AS flagged_frauds
    FROM ranked
    GROUP BY event_date, model_name, model_version
)
SELECT
    v.event_date, v.model_name, v.model_version, v.scored, v.mean_score, v.flagged,
    COALESCE(q.matured, 0) AS matured, COALESCE(q.frauds, 0) AS frauds, COALESCE(q.genuine, 0) AS genuine,
    q.mean_score_fraud, q.mean_score_genuine,
    (q.fraud_rank_sum - q.frauds * (q.frauds + 1) / 2) / NULLIF(CAST(q.frauds AS DOUBLE) * q.genuine, 0) AS auc,
    COALESCE(q.flagged_frauds, 0) AS flagged_frauds,
    CAST(q.flagged_frauds AS DOUBLE) / NULLIF(q.flagged_matured, 0) AS precision,
    CAST(q.flagged_frauds AS DOUBLE) / NULLIF(q.frauds, 0) AS recall
FROM volume v
LEFT JOIN quality q
    ON v.event_date = q.event_date AND v.model_name = q.model_name AND v.model_version = q.model_version

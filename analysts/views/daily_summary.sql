-- aegis.daily_summary (columns and description: analysts/views.py). Placeholders: {db} the database, {known} _known.sql,
-- {matured} the label-maturity predicate on a scores row.
WITH {known},
tx AS (
    SELECT event_date, COUNT(*) AS transactions, SUM(amount) AS amount_sum
    FROM {db}.transactions
    GROUP BY event_date
),
confirmed AS (
    SELECT t.event_date, SUM(k.is_fraud) AS frauds
    FROM {db}.transactions t JOIN known k ON t.transaction_id = k.transaction_id
    GROUP BY t.event_date
),
sc AS (
    SELECT
        s.event_date,
        COUNT(*) AS scored,
        SUM(CASE WHEN s.decision = 'allow' THEN 1 ELSE 0 END) AS allowed,
        SUM(CASE WHEN s.decision = 'review' THEN 1 ELSE 0 END) AS reviewed,
        SUM(CASE WHEN s.decision = 'block' THEN 1 ELSE 0 END) AS blocked,
        AVG(s.score) AS mean_score,
        SUM(CASE WHEN s.{matured} THEN 1 ELSE 0 END) AS matured_scored,
        SUM(CASE WHEN s.{matured} THEN COALESCE(k.is_fraud, 0) ELSE 0 END) AS matured_frauds,
        SUM(CASE WHEN s.{matured} THEN CASE WHEN s.decision IN ('review', 'block') THEN 1 ELSE 0 END ELSE 0 END) AS flagged_matured,
        SUM(CASE WHEN s.{matured} THEN COALESCE(k.is_fraud, 0) * CASE WHEN s.decision IN ('review', 'block') THEN 1 ELSE 0 END ELSE 0 END)
            AS flagged_frauds
    FROM {db}.scores s LEFT JOIN known k ON s.transaction_id = k.transaction_id
    GROUP BY s.event_date
)
SELECT
    tx.event_date,
    tx.transactions,
    tx.amount_sum,
    COALESCE(sc.scored, 0) AS scored,
    COALESCE(sc.allowed, 0) AS allowed,
    COALESCE(sc.reviewed, 0) AS reviewed,
    COALESCE(sc.blocked, 0) AS blocked,
    sc.mean_score,
    COALESCE(confirmed.frauds, 0) AS frauds_confirmed,
    COALESCE(sc.matured_scored, 0) AS matured_scored,
    COALESCE(sc.matured_frauds, 0) AS matured_frauds,
    COALESCE(sc.flagged_matured, 0) AS flagged_matured,
    COALESCE(sc.flagged_frauds, 0) AS flagged_frauds,
    CAST(sc.flagged_frauds AS DOUBLE) / NULLIF(sc.flagged_matured, 0) AS precision,
    CAST(sc.flagged_frauds AS DOUBLE) / NULLIF(sc.matured_frauds, 0) AS recall
FROM tx
LEFT JOIN sc ON tx.event_date = sc.event_date
LEFT JOIN confirmed ON tx.event_date = confirmed.event_date

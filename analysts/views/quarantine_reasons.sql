-- aegis.quarantine_reasons (columns and description: analysts/views.py). Placeholders: {db} the database, {known} _known.sql,
-- {matured} the label-maturity predicate on a scores row.
SELECT
    quarantine_date, reason,
    COUNT(*) AS records,
    COUNT(DISTINCT transaction_id) AS transactions,
    SUM(CASE WHEN source = 'stream' THEN 1 ELSE 0 END) AS from_stream,
    MIN(quarantined_at) AS first_quarantined_at,
    MAX(quarantined_at) AS last_quarantined_at
FROM {db}.quarantine
GROUP BY quarantine_date, reason

-- aegis.risky_terminals / aegis.risky_customers ({entity} = terminal_id / customer_id; columns: analysts/views.py).
-- Placeholders: {db} the database, {known} _known.sql, {top} the number of entities kept per ranking.
WITH {known},
per_entity AS (
    SELECT
        s.{entity} AS entity,
        COUNT(*) AS transactions,
        SUM(s.amount) AS amount_sum,
        AVG(s.score) AS mean_score,
        MAX(s.score) AS max_score,
        SUM(CASE WHEN s.decision = 'review' THEN 1 ELSE 0 END) AS reviews,
        SUM(CASE WHEN s.decision = 'block' THEN 1 ELSE 0 END) AS blocks,
        SUM(COALESCE(k.is_fraud, 0)) AS frauds_confirmed,
        MIN(s.event_date) AS first_date,
        MAX(s.event_date) AS last_date
    FROM {db}.scores s LEFT JOIN known k ON s.transaction_id = k.transaction_id
    GROUP BY s.{entity}
),
ranked AS (
    SELECT entity, transactions, amount_sum, mean_score, max_score, reviews, blocks, frauds_confirmed,
        first_date, last_date,
        RANK() OVER (ORDER BY mean_score DESC) AS mean_score_rank,
        RANK() OVER (ORDER BY blocks DESC, mean_score DESC) AS blocks_rank
    FROM per_entity
)
SELECT entity AS {entity}, transactions, amount_sum, mean_score, max_score, reviews, blocks,
    CAST(blocks AS DOUBLE) / transactions AS block_rate, frauds_confirmed, first_date, last_date,
    mean_score_rank, blocks_rank
FROM ranked
WHERE mean_score_rank <= {top} OR blocks_rank <= {top}

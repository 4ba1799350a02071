-- Labels per transaction: fraudulent if any label reported so far says so (a CTE used by the views).
known AS (
    SELECT transaction_id, MAX(CAST(is_fraud AS INT)) AS is_fraud
    FROM {db}.labels
    GROUP BY transaction_id
)

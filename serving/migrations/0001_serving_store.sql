-- The serving store: the latest score of every transaction, the features it was scored on, the latest
-- feature vector per customer, and analysts' verdicts. Fed from gold.scores / silver.features by the sync.

CREATE TABLE feature_sets (
    feature_version text PRIMARY KEY,
    names           text[] NOT NULL           -- feature names in model-input order
);

CREATE TABLE scores (
    transaction_id      text PRIMARY KEY,
    customer_id         text NOT NULL,
    terminal_id         text,
    event_time          timestamptz NOT NULL,
    event_date          date NOT NULL,
    amount              double precision,
    score               double precision,
    decision            text NOT NULL,
    model_name          text,
    model_version       text,
    feature_version     text,
    policy_version      text,
    top_reasons         jsonb NOT NULL DEFAULT '[]',
    shap_values         double precision[],
    shap_expected_value double precision,
    source              text,
    scored_at           timestamptz,
    synced_at           timestamptz NOT NULL DEFAULT now()
);
-- a customer's page, newest first (keyset on event time, transaction id)
CREATE INDEX scores_customer_time ON scores (customer_id, event_time DESC, transaction_id DESC);
-- the review queue, newest first; allow decisions are not in it
CREATE INDEX scores_queue ON scores (event_time DESC, transaction_id DESC) WHERE decision <> 'allow';
CREATE INDEX scores_queue_decision ON scores (decision, event_time DESC, transaction_id DESC)
    WHERE decision <> 'allow';
-- retention and resync by date
CREATE INDEX scores_event_date ON scores (event_date);

CREATE TABLE transaction_features (
    transaction_id  text PRIMARY KEY,
    customer_id     text NOT NULL,
    event_time      timestamptz NOT NULL,
    event_date      date NOT NULL,
    feature_version text NOT NULL,
    computed_at     timestamptz,
    feature_values  double precision[] NOT NULL,
    synced_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transaction_features_event_date ON transaction_features (event_date);

-- one row per customer; only moves forward in (event time, computation time)
CREATE TABLE customer_features (
    customer_id     text PRIMARY KEY,
    transaction_id  text NOT NULL,
    event_time      timestamptz NOT NULL,
    feature_version text NOT NULL,
    computed_at     timestamptz,
    feature_values  double precision[] NOT NULL,
    synced_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE verdicts (
    verdict_id     bigserial PRIMARY KEY,
    transaction_id text NOT NULL,
    customer_id    text NOT NULL,
    terminal_id    text NOT NULL,
    is_fraud       boolean NOT NULL,
    analyst        text NOT NULL,
    note           text,
    reported_at    timestamptz NOT NULL,
    published_at   timestamptz           -- when the label event was acknowledged by the labels topic
);
CREATE INDEX verdicts_transaction ON verdicts (transaction_id, reported_at DESC);

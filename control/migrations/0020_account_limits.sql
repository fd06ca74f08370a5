-- Call limits the operator set for an account through the admin API (above the configuration's
-- defaults and per-account values).
CREATE TABLE account_limits (
    account_sid TEXT PRIMARY KEY,
    max_calls BIGINT NOT NULL,
    calls_per_second DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Numbers an account may claim through the API, granted by the operator through the admin API
-- (the config's `number_ranges` are granted besides these, and not stored).
CREATE TABLE number_ranges (
    account_sid TEXT NOT NULL,
    number_range TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_sid, number_range)
);
